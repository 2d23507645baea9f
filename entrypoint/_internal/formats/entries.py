"""A termination-message entry and its type codes, shared by the writer, the parser and the formats.

Apart from :mod:`entrypoint.termination` (which re-exports them) so that the parser can use them
without importing the module that imports the parser.
"""

from __future__ import annotations

from enum import IntEnum

from entrypoint._internal.go.json import go_string

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a step ~1.7 ms
if TYPE_CHECKING:
    from typing import Any


class ResultType(IntEnum):
    """Tekton's type codes of termination-message entries (``type`` in the JSON)."""

    UNSET = 0
    TASK_RUN_RESULT = 1
    INTERNAL = 3
    STEP_RESULT = 4
    STEP_ARTIFACTS = 5
    TASK_RUN_ARTIFACTS = 6
    UNKNOWN = 10


TYPE_ALIASES = {
    "TaskRunResult": ResultType.TASK_RUN_RESULT,
    "InternalTektonResult": ResultType.INTERNAL,
    "StepResult": ResultType.STEP_RESULT,
    "StepArtifactsResult": ResultType.STEP_ARTIFACTS,
    "TaskRunArtifactsResult": ResultType.TASK_RUN_ARTIFACTS,
}


if TYPE_CHECKING:
    from typing import NamedTuple

    class _Fields(NamedTuple):
        key: str
        value: str
        type: int = 0
        resource_name: str = ""

else:
    # The same fields without importing typing (a step pays ~1.7 ms for it); collections is
    # loaded anyway.  A tuple is built in C: parsing and verifying create many entries.
    from collections import namedtuple

    _Fields = namedtuple("_Fields", ("key", "value", "type", "resource_name"), defaults=(0, ""))


class RunResult(_Fields):
    """One termination-message entry.  ``type`` stays an int: unknown codes must round-trip.

    Immutable and compared by value (a tuple of key, value, type, resource_name).
    """

    __slots__ = ()

    def to_json_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"key": self.key, "value": self.value}
        if self.resource_name:
            obj["resourceName"] = self.resource_name
        if self.type:
            obj["type"] = self.type
        return obj

    def to_json(self) -> str:
        """Go's encoding of the entry: field order key, value, resourceName, type."""
        out = '{"key":' + go_string(self.key) + ',"value":' + go_string(self.value)
        if self.resource_name:
            out += ',"resourceName":' + go_string(self.resource_name)
        if self.type:
            out += f',"type":{self.type}'
        return out + "}"

    def is_zero(self) -> bool:
        return not (self.key or self.value or self.resource_name or self.type)
