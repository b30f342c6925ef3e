"""Reading rule and template documents from YAML text.

YAML 1.1 reads the bare word `on` as the boolean true, which would break every rule's `on:`
key; this loader only knows `true` and `false` as booleans.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_documents(text: str) -> list[dict[str, Any]]:
    """Parse every YAML document in `text`, skipping empty ones; each must be a mapping."""
    documents = []
    for document in yaml.load_all(text, Loader=_Loader):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ValueError("each YAML document must be a mapping with an 'id'")
        documents.append(document)
    return documents
