"""Binary labels from a rule on the event value: ``EVENT_VALUE >= 4`` (the SageMaker FM design's "rated 4+").

One parser for every place that turns ratings into a yes/no label: the ``fm`` recipe's ``binary`` objective and
``recsmith evaluate --task binary --label``.

Examples
--------
>>> rule = parse_label_rule("EVENT_VALUE >= 4")
>>> rule.apply(np.array([3.0, 4.0, 5.0])).tolist(), str(rule)
([False, True, True], 'EVENT_VALUE >= 4')
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recsmith.errors import ConfigError

OPERATORS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "=": operator.eq,
    "!=": operator.ne,
}
FIELDS = ("EVENT_VALUE",)
_RULE = re.compile(r"^\s*([A-Za-z_]+)\s*(>=|<=|==|!=|>|<|=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class LabelRule:
    """A comparison of ``EVENT_VALUE`` with a number; true is the positive label.

    Attributes
    ----------
    field : str
        ``EVENT_VALUE``.
    op : str
        One of ``>=``, ``>``, ``<=``, ``<``, ``==`` (or ``=``), ``!=``.
    value : float
        The number compared with.
    """

    field: str
    op: str
    value: float

    def apply(self, values: np.ndarray) -> np.ndarray:
        """``bool`` labels of event values (NaN, a pair without a value, is never positive)."""
        values = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return np.asarray(OPERATORS[self.op](values, self.value), dtype=bool) & np.isfinite(values)

    def __str__(self) -> str:
        number = int(self.value) if float(self.value).is_integer() else self.value
        return f"{self.field} {self.op} {number}"


def parse_label_rule(text: str) -> LabelRule:
    """Parse ``FIELD OP NUMBER`` (``EVENT_VALUE >= 4``; the field name in any case).

    Raises
    ------
    ConfigError
        For any other text, naming what is wrong.
    """
    if not isinstance(text, str):
        raise ConfigError(f"a label rule is text such as 'EVENT_VALUE >= 4', got {text!r}")
    match = _RULE.match(text)
    if match is None:
        raise ConfigError(f"label rule {text!r} is not 'FIELD OP NUMBER', e.g. 'EVENT_VALUE >= 4' "
                          f"(operators: {', '.join(o for o in OPERATORS if o != '=')})")
    field, op, number = match.groups()
    if field.upper() not in FIELDS:
        raise ConfigError(f"label rule {text!r}: field {field!r} is not one of {', '.join(FIELDS)}")
    return LabelRule(field.upper(), "==" if op == "=" else op, float(number))
