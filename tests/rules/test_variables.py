"""Every variable a template text reads that the event lacks, named by its whole path."""

from services.rules.rendering import SampleData
from services.rules.variables import undefined_variables

VARIABLES = {"citizen": {"name": "Ana"}, "data": {"oficina": {"calle": "Mayor"}, "n": 1}}


def test_every_missing_path_is_named_once_in_order_of_use():
    source = (
        "{{ citizen.nmae }} {{ data.oficina.numero | fecha }} {{ citizen['apellido'] }}"
        " {{ citizen.nmae }} {{ otra }}"
    )
    assert undefined_variables(source, VARIABLES) == [
        "citizen.nmae",
        "data.oficina.numero",
        "citizen.apellido",
        "otra",
    ]


def test_names_the_text_binds_and_attributes_of_plain_values_are_not_reported():
    source = (
        "{% set x = 1 %}{{ x }}{% for k in data.oficina %}{{ k.anything }}{% endfor %}"
        "{{ citizen.name.upper() }} {{ data.n.real }} {{ data.oficina.calle }}"
    )
    assert undefined_variables(source, VARIABLES) == []


def test_sample_data_and_unparsable_texts_report_nothing():
    assert undefined_variables("{{ data.whatever.deep }}", {"data": SampleData()}) == []
    assert undefined_variables("{{ citizen.nmae ", VARIABLES) == []
    assert undefined_variables("{{ citizen.nmae | no_such_filter }}", VARIABLES) == []
