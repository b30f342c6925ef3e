import pytest

from services.rules.sms import sms_length


@pytest.mark.parametrize(
    ("text", "encoding", "characters", "segments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("Renuévalo ñ ¿Ü?", "GSM-7", 15, 1),
        ("€" * 80, "GSM-7", 160, 1),
        ("Tráfico", "UCS-2", 7, 1),
        ("á" * 71, "UCS-2", 71, 2),
    ],
)
def test_encoding_and_segments(text, encoding, characters, segments):
    length = sms_length(text)
    assert (length.encoding, length.characters, length.segments) == (
        encoding,
        characters,
        segments,
    )


@pytest.mark.parametrize(
    ("text", "forced_by"),
    [
        ("Renuévalo ñ ¿Ü? {€}", ()),
        ("Tráfico", ("á",)),
        ("Sí, ¿cuándo? Avísame: la próxima cita útil", ("í", "á", "ó", "ú")),
        ("Cita 📅 en Tráfico 📅", ("📅", "á")),
    ],
)
def test_ucs2_names_the_characters_that_forced_it(text, forced_by):
    length = sms_length(text)
    assert length.forced_by == forced_by
    assert length.encoding == ("UCS-2" if forced_by else "GSM-7")
