"""Amazon Personalize filter expressions, parsed once and compiled to boolean item masks.

A filter is one or more expressions joined with ``|``::

    INCLUDE ItemID WHERE Items.GENRE IN ($GENRE) AND Items.PRICE <= 20 IF CurrentUser.TIER = "gold"
    | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")

Grammar (keywords and dataset names are case-insensitive; field and parameter names keep their case)::

    filter      := expression ( "|" expression )*
    expression  := ( INCLUDE | EXCLUDE ) ItemID WHERE or_expr [ IF user_cond ( AND user_cond )* ]
    or_expr     := and_expr ( OR and_expr )*              -- AND binds tighter than OR
    and_expr    := primary ( AND primary )*
    primary     := "(" or_expr ")" | condition
    condition   := ( Items | Interactions ) "." FIELD predicate
    user_cond   := CurrentUser "." FIELD predicate
    predicate   := IN values | NOT IN values | ( "=" | "<" | ">" | "<=" | ">=" ) operand
    values      := "(" operand ( "," operand )* ")" | $PARAM | CurrentItem "." FIELD
    operand     := "string" | number | $PARAM | CurrentItem "." FIELD

Element rules follow "Filter expression structure and elements" and "Item recommendation filter expression
examples" in the Amazon Personalize developer guide
(https://docs.aws.amazon.com/personalize/latest/dg/creating-filter-expressions.html,
https://docs.aws.amazon.com/personalize/latest/dg/item-recommendation-filter-examples.html):

- conditions joined with AND/OR "can only affect fields of the dataset used in the first condition", so an
  expression filters either on ``Items`` or on ``Interactions``; combine the two with ``|``;
- ``Interactions`` can only be filtered by ``EVENT_TYPE`` (with ``IN``);
- ``IF`` is used once, at the end of an expression, only for ``CurrentUser`` conditions, which may be
  extended with ``AND``;
- ``CurrentItem.FIELD`` (related-items requests) may stand on the right-hand side, with or without
  parentheses after ``IN`` (the guide writes ``Items.GENRE IN CurrentItem.GENRE``).

Extensions (not in the guide, harmless supersets): parentheses to group conditions, and ``\\"`` / ``\\\\``
escapes inside string literals.

Only ``ItemID`` filters are supported (item recommendations); ``ActionID`` and ``UserID`` filters are rejected.

Limits (each breach is a :class:`~recsmith.errors.FilterError`, an HTTP 400, raised before any other work):

- an expression is at most :data:`FILTER_MAX_EXPRESSION_LENGTH` characters (Personalize allows 2,500);
- parentheses nest at most :data:`FILTER_MAX_DEPTH` levels deep;
- a number literal has at most :data:`FILTER_MAX_NUMBER_DIGITS` digits and must be finite;
- a request binds at most :data:`FILTER_MAX_PARAMETERS` parameters, each to at most :data:`FILTER_MAX_VALUES`
  values of at most :data:`FILTER_MAX_VALUE_LENGTH` characters (see :func:`check_filter_values`).

Compiled masks are cached by :class:`FilterCache`, which is bounded by bytes (:data:`FILTER_CACHE_BYTES` by
default), not by entries.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeAlias
from typing import Literal as TypingLiteral

import numpy as np

from recsmith.data.vocabulary import Vocabulary
from recsmith.errors import Advice, FilterError, UnknownIdError, advise

__all__ = [
    "FILTER_CACHE_BYTES", "FILTER_CACHE_MAX_KEY_BYTES", "FILTER_MAX_DEPTH", "FILTER_MAX_EXPRESSION_LENGTH",
    "FILTER_MAX_NUMBER_DIGITS", "FILTER_MAX_PARAMETERS", "FILTER_MAX_VALUES", "FILTER_MAX_VALUE_LENGTH",
    "And", "CurrentItemRef", "Condition", "Expression", "Filter", "FilterCache", "FilterFieldError",
    "FilterSyntaxError", "FilterValueError", "ItemCatalog", "Literal", "Or", "Param", "UserCondition",
    "check_filter_fields", "check_filter_values", "compile_filter", "error_span", "item_attribute_mask", "parse_filter",
    "parse_filter_value",
]

COMPARISONS = ("=", "<", ">", "<=", ">=")
OPERATORS = ("IN", "NOT IN", *COMPARISONS)
ParamValue: TypeAlias = "str | float | int | bool | Sequence[str | float | int | bool]"

FILTER_MAX_EXPRESSION_LENGTH = 10_000
"""Longest filter expression, in characters: the HTTP API's limit on a stored filter's text, so every filter
stored before these limits still parses (Personalize allows 2,500)."""

FILTER_MAX_DEPTH = 32
"""Deepest nesting of parentheses in an expression (the parser recurses once per level)."""

FILTER_MAX_NUMBER_DIGITS = 50
"""Most digits in a number literal: far beyond a float64's 17 significant digits, far below Python's 4,300-digit
limit on converting text to an int."""

FILTER_MAX_PARAMETERS = 25
"""Most ``$PARAM`` values one request binds: Personalize's limit on ``filterValues`` entries."""

FILTER_MAX_VALUES = 100
"""Most values bound to one parameter. Personalize passes a parameter's values as one comma-separated string of
quoted values of at most 1,000 characters: about 100 short values. 100 keeps that order of magnitude and bounds
what one request costs to compile and to key (at most 100 lookups in a field's index per parameter)."""

FILTER_MAX_VALUE_LENGTH = 1_000
"""Longest single parameter value, in characters (Personalize's limit on a parameter's whole value string)."""

FILTER_CACHE_BYTES = 64 * 2**20
"""Default byte budget of a :class:`FilterCache` (``RECSMITH_FILTER_CACHE_BYTES``): masks plus keys."""

FILTER_CACHE_MAX_KEY_BYTES = 64 * 2**10
"""A request whose cache key is bigger than this is compiled but not cached (a long history, many values)."""


class FilterSyntaxError(FilterError):
    """A filter expression does not parse.

    Attributes
    ----------
    position : int
        0-based character offset in the expression where the problem is.
    expression : str
        The expression that was parsed.
    problem : str
        What is wrong, without the position and the caret (the message's first part).
    """

    def __init__(self, message: str, expression: str, position: int) -> None:
        self.position = position
        self.expression = expression
        self.problem = message
        super().__init__(f"{message} at position {position}\n{_pointed(expression, position)}")


_CONTEXT = 60
"""Characters shown on each side of the position in a syntax error about a long expression."""


def _pointed(text: str, position: int) -> str:
    """``text`` (the part around ``position`` when it is long) over a caret under ``position``, indented."""
    shown, offset = text, position
    if len(text) > 2 * _CONTEXT:
        start = max(position - _CONTEXT, 0)
        end = min(position + _CONTEXT, len(text))
        shown = ("..." if start else "") + text[start:end] + ("..." if end < len(text) else "")
        offset = position - start + (3 if start else 0)
    return f"  {shown}\n  {' ' * offset}^"


class FilterFieldError(FilterSyntaxError):
    """A filter expression parses but names a field its dataset group's schema lacks (see
    :func:`check_filter_fields`).

    Attributes
    ----------
    position : int
        0-based offset of the field name in the expression.
    expression : str
        The expression.
    dataset : {"items", "users"}
        The dataset whose schema was looked in.
    field : str
        The field named.
    known : tuple of str or None
        The fields a filter may name there (None: the group has no schema for the dataset).
    suggestion : str or None
        The known field closest to ``field`` ("did you mean ...?").
    hint : str
        The fix: the nearest field and the fields there are (the message's last line).
    """

    def __init__(self, message: str, expression: str, position: int, *, dataset: str, field: str,
                 known: tuple[str, ...] | None, suggestion: str | None, hint: str) -> None:
        super().__init__(message, expression, position)
        self.dataset, self.field, self.known, self.suggestion = dataset, field, known, suggestion
        self.hint = hint
        self.args = (f"{self.args[0]}\n  {hint}",)


class FilterValueError(FilterError):
    """A ``$PARAM`` value that cannot be bound (see :func:`parse_filter_value`): a malformed quoted form, or a
    value that holds nothing a filter can match.

    Attributes
    ----------
    parameter : str
        The parameter's name (without ``$``).
    value : Any
        The value as it was given.
    position : int or None
        0-based character offset in ``value`` where the quoted form goes wrong (None for an empty value).
    problem : str
        What is wrong, without the parameter, the position and the caret.
    """

    def __init__(self, problem: str, parameter: str, value: Any, position: int | None = None) -> None:
        self.parameter, self.value, self.position, self.problem = parameter, value, position, problem
        if position is None:
            message = f"filter value ${parameter} ({value!r}) {problem}"
        else:
            message = (f"filter value ${parameter}: {problem} at position {position}\n{_pointed(str(value), position)}"
                       f"\n  {_QUOTED_FIX}")
        super().__init__(message)


_QUOTED_FIX = ('a value starting with " is Personalize\'s quoted form: "A" or "A","B", with \\" for a quote and '
               "\\\\ for a backslash inside a value")


# --------------------------------------------------------------------------------------------------- the AST


@dataclass(frozen=True)
class Literal:
    """A literal value: a double-quoted string or an unquoted number."""

    value: str | int | float

    def __str__(self) -> str:
        if isinstance(self.value, str):
            return '"' + self.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(self.value)


@dataclass(frozen=True)
class Param:
    """A ``$NAME`` placeholder bound from the request's filter values."""

    name: str

    def __str__(self) -> str:
        return f"${self.name}"


@dataclass(frozen=True)
class CurrentItemRef:
    """``CurrentItem.FIELD``: the value(s) of a field of the item a related-items request is about."""

    field: str
    position: int = dataclasses.field(default=0, compare=False)

    def __str__(self) -> str:
        return f"CurrentItem.{self.field}"


Operand: TypeAlias = Literal | Param | CurrentItemRef


def _format_predicate(op: str, values: tuple[Operand, ...], bare: bool) -> str:
    if op in COMPARISONS:
        return f"{op} {values[0]}"
    if bare:
        return f"{op} {values[0]}"
    return f"{op} ({', '.join(str(v) for v in values)})"


@dataclass(frozen=True)
class Condition:
    """``Items.FIELD op value(s)`` or ``Interactions.EVENT_TYPE IN (...)``.

    Attributes
    ----------
    dataset : {"Items", "Interactions"}
    field : str
    op : {"IN", "NOT IN", "=", "<", ">", "<=", ">="}
    values : tuple of Literal, Param or CurrentItemRef
        One operand for comparisons; one or more for ``IN``/``NOT IN``.
    bare : bool
        ``IN $P`` / ``IN CurrentItem.F`` written without parentheses (kept for printing).
    position : int
        Offset of the condition in the source (not part of equality).
    """

    dataset: TypingLiteral["Items", "Interactions"]
    field: str
    op: str
    values: tuple[Operand, ...]
    bare: bool = False
    position: int = dataclasses.field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.dataset}.{self.field} {_format_predicate(self.op, self.values, self.bare)}"


@dataclass(frozen=True)
class And:
    """Conditions that must all hold."""

    terms: tuple[Node, ...]

    def __str__(self) -> str:
        return " AND ".join(f"({t})" if isinstance(t, Or) else str(t) for t in self.terms)


@dataclass(frozen=True)
class Or:
    """Conditions of which at least one must hold."""

    terms: tuple[Node, ...]

    def __str__(self) -> str:
        return " OR ".join(str(t) for t in self.terms)


Node: TypeAlias = Condition | And | Or


@dataclass(frozen=True)
class UserCondition:
    """``CurrentUser.FIELD op value(s)`` in an ``IF`` clause."""

    field: str
    op: str
    values: tuple[Literal | Param, ...]
    bare: bool = False
    position: int = dataclasses.field(default=0, compare=False)

    def __str__(self) -> str:
        return f"CurrentUser.{self.field} {_format_predicate(self.op, self.values, self.bare)}"


@dataclass(frozen=True)
class Expression:
    """One ``INCLUDE``/``EXCLUDE`` expression: a ``WHERE`` tree and an optional ``IF`` condition (ANDed)."""

    action: TypingLiteral["INCLUDE", "EXCLUDE"]
    where: Node
    condition: tuple[UserCondition, ...] = ()
    position: int = dataclasses.field(default=0, compare=False)

    def __str__(self) -> str:
        text = f"{self.action} ItemID WHERE {self.where}"
        if self.condition:
            text += " IF " + " AND ".join(str(c) for c in self.condition)
        return text

    @property
    def parameters(self) -> tuple[str, ...]:
        """``$PARAM`` names used by this expression, in order of first appearance."""
        return tuple(dict.fromkeys(v.name for v in _operands(self) if isinstance(v, Param)))


def _conditions(node: Node) -> Iterable[Condition]:
    if isinstance(node, Condition):
        yield node
    else:
        for term in node.terms:
            yield from _conditions(term)


def _operands(expression: Expression) -> Iterable[Operand]:
    for cond in _conditions(expression.where):
        yield from cond.values
    for user_cond in expression.condition:
        yield from user_cond.values


@dataclass(frozen=True)
class Filter:
    """A parsed filter: one or more expressions joined with ``|``. Immutable and hashable.

    ``str(filter)`` prints it back in canonical form (keywords upper-case, one space between tokens);
    parsing that text gives an equal ``Filter``.
    """

    expressions: tuple[Expression, ...]

    def __str__(self) -> str:
        return " | ".join(str(e) for e in self.expressions)

    @property
    def parameters(self) -> tuple[str, ...]:
        """``$PARAM`` names used anywhere in the filter, in order of first appearance."""
        return tuple(dict.fromkeys(name for e in self.expressions for name in e.parameters))

    @property
    def uses_interactions(self) -> bool:
        """Whether any expression filters on ``Interactions.EVENT_TYPE`` (the mask depends on the user)."""
        return any(c.dataset == "Interactions" for e in self.expressions for c in _conditions(e.where))

    @property
    def current_item_fields(self) -> tuple[str, ...]:
        """Fields read through ``CurrentItem.FIELD``."""
        return tuple(dict.fromkeys(v.field for e in self.expressions for v in _operands(e)
                                   if isinstance(v, CurrentItemRef)))

    @property
    def user_fields(self) -> tuple[str, ...]:
        """Fields read through ``CurrentUser.FIELD`` in ``IF`` conditions."""
        return tuple(dict.fromkeys(c.field for e in self.expressions for c in e.condition))


# --------------------------------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Token:
    kind: str  # IDENT, STRING, NUMBER, PARAM, OP, "(", ")", ",", ".", "|", EOF
    text: str
    position: int
    value: Any = None


_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATOR = re.compile(r"<=|>=|<>|!=|==|=|<|>")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "(),.|":
            tokens.append(_Token(char, char, i))
            i += 1
        elif char == '"':
            start, i, chars = i, i + 1, []
            while True:
                if i >= n:
                    raise FilterSyntaxError("unterminated string: no closing \" for the string starting", text, start)
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\':
                    chars.append(text[i + 1])
                    i += 2
                elif text[i] == '"':
                    i += 1
                    break
                else:
                    chars.append(text[i])
                    i += 1
            tokens.append(_Token("STRING", text[start:i], start, "".join(chars)))
        elif char == "$":
            match = _IDENT.match(text, i + 1)
            if match is None:
                raise FilterSyntaxError("expected a parameter name after $ (letters, digits, _)", text, i)
            tokens.append(_Token("PARAM", text[i:match.end()], i, match.group()))
            i = match.end()
        elif (match := _OPERATOR.match(text, i)) is not None:
            tokens.append(_Token("OP", match.group(), i))
            i = match.end()
        elif (match := _NUMBER.match(text, i)) is not None:
            literal = match.group()
            digits = sum(c.isdigit() for c in literal)
            if digits > FILTER_MAX_NUMBER_DIGITS:
                raise FilterSyntaxError(f"number literal of {digits:,} digits is too long (at most "
                                        f"{FILTER_MAX_NUMBER_DIGITS})", text, i)
            number: int | float = int(literal) if re.fullmatch(r"-?\d+", literal) else float(literal)
            if not math.isfinite(number):
                raise FilterSyntaxError(f"number literal {literal} is out of range (it overflows a float64)", text, i)
            tokens.append(_Token("NUMBER", literal, i, number))
            i = match.end()
        elif (match := _IDENT.match(text, i)) is not None:
            tokens.append(_Token("IDENT", match.group(), i))
            i = match.end()
        else:
            raise FilterSyntaxError(f"unexpected character {char!r}", text, i)
    tokens.append(_Token("EOF", "", n))
    return tokens


# --------------------------------------------------------------------------------------------------- parser


def _describe(token: _Token) -> str:
    return "the end of the expression" if token.kind == "EOF" else repr(token.text)


class _Parser:
    """Recursive descent over the token list; one method per grammar rule."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0  # parentheses open around the current position
        self.datasets: list[str] = []  # datasets of the current expression's conditions

    # helpers
    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, message: str, position: int | None = None) -> FilterSyntaxError:
        return FilterSyntaxError(message, self.text, self.token.position if position is None else position)

    def is_keyword(self, *words: str) -> bool:
        return self.token.kind == "IDENT" and self.token.text.upper() in words

    def expect_keyword(self, word: str, context: str) -> _Token:
        if not self.is_keyword(word):
            raise self.error(f"expected {word} {context}, got {_describe(self.token)}")
        return self.advance()

    def expect(self, kind: str, context: str) -> _Token:
        if self.token.kind != kind:
            raise self.error(f"expected {kind} {context}, got {_describe(self.token)}")
        return self.advance()

    # rules
    def parse(self) -> Filter:
        expressions = [self.expression()]
        while self.token.kind == "|":
            self.advance()
            expressions.append(self.expression())
        if self.token.kind != "EOF":
            raise self.error(f"expected | or the end of the expression, got {_describe(self.token)}")
        return Filter(tuple(expressions))

    def expression(self) -> Expression:
        start = self.token.position
        if not self.is_keyword("INCLUDE", "EXCLUDE"):
            raise self.error(f"expected INCLUDE or EXCLUDE, got {_describe(self.token)}")
        action = self.advance().text.upper()
        if self.is_keyword("ACTIONID", "USERID"):
            raise self.error(f"only ItemID filters are supported here, not {self.token.text}")
        self.expect_keyword("ITEMID", f"after {action}")
        self.expect_keyword("WHERE", "after ItemID")
        self.datasets = []
        where = self.or_expr()
        condition: list[UserCondition] = []
        if self.is_keyword("IF"):
            self.advance()
            condition.append(self.user_condition())
            while self.is_keyword("AND"):
                self.advance()
                condition.append(self.user_condition())
        return Expression(action, where, tuple(condition), position=start)  # type: ignore[arg-type]

    def or_expr(self) -> Node:
        terms = [self.and_expr()]
        while self.is_keyword("OR"):
            self.advance()
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else Or(tuple(terms))

    def and_expr(self) -> Node:
        terms = [self.primary()]
        while self.is_keyword("AND"):
            self.advance()
            terms.append(self.primary())
        return terms[0] if len(terms) == 1 else And(tuple(terms))

    def primary(self) -> Node:
        if self.token.kind == "(":
            if self.depth >= FILTER_MAX_DEPTH:
                raise self.error(f"parentheses nest more than {FILTER_MAX_DEPTH} levels deep")
            opening = self.advance()
            self.depth += 1
            node = self.or_expr()
            self.depth -= 1
            if self.token.kind != ")":
                raise self.error(f"expected ) to close the ( at position {opening.position}, "
                                 f"got {_describe(self.token)}")
            self.advance()
            return node
        return self.condition()

    def dotted(self, what: str) -> tuple[_Token, str]:
        """``Dataset.FIELD``: the dataset token and the field name."""
        if self.token.kind != "IDENT":
            raise self.error(f"expected {what}, got {_describe(self.token)}")
        dataset = self.advance()
        if self.token.kind != ".":
            raise self.error(f"expected . and a field name after {dataset.text} (as in {dataset.text}.GENRE), "
                             f"got {_describe(self.token)}")
        self.advance()
        if self.token.kind != "IDENT":
            raise self.error(f"expected a field name after {dataset.text}., got {_describe(self.token)}")
        return dataset, self.advance().text

    def condition(self) -> Condition:
        start = self.token.position
        dataset_token, name = self.dotted("a condition such as Items.FIELD or Interactions.EVENT_TYPE")
        dataset = dataset_token.text.upper()
        if dataset == "CURRENTUSER":
            raise self.error("CurrentUser may only be used after IF, at the end of the expression", start)
        if dataset == "CURRENTITEM":
            raise self.error("CurrentItem may only be used on the right-hand side (Items.GENRE IN CurrentItem.GENRE)",
                             start)
        if dataset not in ("ITEMS", "INTERACTIONS"):
            raise self.error(f"unknown element {dataset_token.text}.{name}: an ItemID filter uses Items.FIELD or "
                             "Interactions.EVENT_TYPE (and CurrentUser.FIELD after IF)", start)
        canonical = "Items" if dataset == "ITEMS" else "Interactions"
        if self.datasets and self.datasets[0] != canonical:
            raise self.error(f"conditions joined with AND/OR must use the dataset of the first condition "
                             f"({self.datasets[0]}), not {canonical}; combine them as separate expressions with |",
                             start)
        self.datasets.append(canonical)
        where = f"{dataset_token.text}.{name}"
        if canonical == "Interactions" and name.upper() != "EVENT_TYPE":
            raise self.error(f"Interactions can only be filtered by EVENT_TYPE, not {name}", start)
        op, values, bare = self.predicate(where, allow_current_item=canonical == "Items")
        if canonical == "Interactions":
            name = "EVENT_TYPE"
            if op != "IN":
                raise self.error(f"Interactions.EVENT_TYPE supports only IN, not {op}", start)
        return Condition(canonical, name, op, values, bare, position=start)  # type: ignore[arg-type]

    def user_condition(self) -> UserCondition:
        start = self.token.position
        dataset_token, name = self.dotted("a CurrentUser.FIELD condition after IF")
        if dataset_token.text.upper() != "CURRENTUSER":
            raise self.error(f"expected CurrentUser.FIELD after IF, got {dataset_token.text}.{name}", start)
        op, values, bare = self.predicate(f"CurrentUser.{name}", allow_current_item=False)
        return UserCondition(name, op, values, bare, position=start)  # type: ignore[arg-type]

    def predicate(self, where: str, *, allow_current_item: bool) -> tuple[str, tuple[Operand, ...], bool]:
        expected = f"expected IN, NOT IN or a comparison (=, <, >, <=, >=) after {where}"
        if self.is_keyword("IN"):
            self.advance()
            op = "IN"
        elif self.is_keyword("NOT"):
            self.advance()
            self.expect_keyword("IN", "after NOT")
            op = "NOT IN"
        elif self.token.kind == "OP" and self.token.text in COMPARISONS:
            op = self.advance().text
            return op, (self.operand(allow_current_item),), False
        else:
            raise self.error(f"{expected}, got {_describe(self.token)}")
        if self.token.kind == "(":
            self.advance()
            if self.token.kind == ")":
                raise self.error(f"expected at least one value in the {op} list")
            values = [self.operand(allow_current_item)]
            while self.token.kind == ",":
                self.advance()
                values.append(self.operand(allow_current_item))
            if self.token.kind != ")":
                raise self.error(f"expected , or ) in the {op} list, got {_describe(self.token)}")
            self.advance()
            return op, tuple(values), False
        if self.token.kind == "PARAM" or (allow_current_item and self.is_keyword("CURRENTITEM")):
            return op, (self.operand(allow_current_item),), True
        raise self.error(f"expected ( and a list of values after {op}, got {_describe(self.token)}")

    def operand(self, allow_current_item: bool) -> Operand:
        token = self.token
        if token.kind in ("STRING", "NUMBER"):
            self.advance()
            return Literal(token.value)
        if token.kind == "PARAM":
            self.advance()
            return Param(token.value)
        if token.kind == "IDENT" and token.text.upper() == "CURRENTITEM":
            if not allow_current_item:
                raise self.error("CurrentItem.FIELD can only be compared with Items fields")
            _, name = self.dotted("CurrentItem.FIELD")
            return CurrentItemRef(name, position=token.position)
        raise self.error(f'expected a value ("string", number, $PARAM or CurrentItem.FIELD), got {_describe(token)}')


@lru_cache(maxsize=512)
def _parse_cached(expression: str) -> Filter:
    return _Parser(expression).parse()


def parse_filter(expression: str) -> Filter:
    """Parse a Personalize filter expression.

    Parameters
    ----------
    expression : str
        The filter text, e.g. ``'EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE)'``.

    Returns
    -------
    Filter
        The immutable syntax tree (parsed texts are memoised, so parsing the same text again is cheap).

    Raises
    ------
    FilterSyntaxError
        A :class:`~recsmith.errors.FilterError` naming what was expected and where (character offset and a
        caret under the expression); also for a number literal of more than :data:`FILTER_MAX_NUMBER_DIGITS`
        digits or parentheses nested deeper than :data:`FILTER_MAX_DEPTH`.
    FilterError
        For an expression longer than :data:`FILTER_MAX_EXPRESSION_LENGTH` characters (before it is read).

    Examples
    --------
    >>> f = parse_filter('include itemid where Items.GENRE in ("Comedy") | EXCLUDE ItemID WHERE Items.PRICE > $MAX')
    >>> str(f)
    'INCLUDE ItemID WHERE Items.GENRE IN ("Comedy") | EXCLUDE ItemID WHERE Items.PRICE > $MAX'
    >>> f.parameters
    ('MAX',)
    """
    if not isinstance(expression, str):
        raise FilterError(f"a filter expression must be a string, got {type(expression).__name__}")
    if len(expression) > FILTER_MAX_EXPRESSION_LENGTH:
        raise FilterError(f"the filter expression is {len(expression):,} characters long; at most "
                          f"{FILTER_MAX_EXPRESSION_LENGTH:,} are allowed (it starts {expression[:60]!r})")
    if not expression.strip():
        raise FilterSyntaxError("expected INCLUDE or EXCLUDE, got an empty expression", expression, 0)
    return _parse_cached(expression)


def error_span(expression: str, position: int) -> tuple[int, int]:
    """The characters a :class:`FilterSyntaxError` points at: the token that starts at its ``position``.

    Parameters
    ----------
    expression : str
        The expression that was parsed (the error's ``expression``).
    position : int
        The error's 0-based ``position``.

    Returns
    -------
    tuple of int
        ``(start, end)``, ``expression[start:end]`` being the token (a word, a string, a number, an operator or a
        punctuation mark); one character where no token starts there (the tokenizer stopped at it); ``(n, n)`` at
        the end of the expression (something is missing there).

    Examples
    --------
    >>> text = 'INCLUDE ItemID WHER Items.GENRES IN ("x")'
    >>> start, end = error_span(text, 15)
    >>> text[start:end]
    'WHER'
    """
    n = len(expression)
    position = min(max(position, 0), n)
    if position == n:
        return n, n
    try:
        tokens = _tokenize(expression)
    except FilterSyntaxError:
        tokens = []
    for token in tokens:
        if token.position == position and token.kind != "EOF":
            return position, position + len(token.text)
    return position, position + 1


_ID_FIELDS = {"items": "ITEM_ID", "users": "USER_ID"}
_ELEMENTS = {"items": "Items", "users": "CurrentUser"}


def _field_position(text: str, start: int) -> int:
    """Offset of the field name in ``Dataset.FIELD`` written at ``start`` (spaces may surround the dot)."""
    position = text.index(".", start) + 1
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def check_filter_fields(expression: str, fields: Mapping[str, Sequence[str] | None]) -> Filter:
    """Refuse a filter that names a field its dataset group's schemas lack, so that it is not stored only to fail
    every request.

    ``Items.F`` and ``CurrentItem.F`` must be fields of the items schema, ``CurrentUser.F`` of the users schema;
    ``Interactions.EVENT_TYPE`` (the only ``Interactions`` field the grammar allows) is reserved and always
    exists (every event has a type). The ids (``ITEM_ID``, ``USER_ID``) are not metadata a filter can test.

    Parameters
    ----------
    expression : str
        The filter text.
    fields : mapping
        ``{"items": names, "users": names}``: the fields of the group's items and users schemas, or None for a
        dataset that has no schema (nothing was imported or put into it, so no field of it can exist yet).

    Returns
    -------
    Filter
        The parsed filter.

    Raises
    ------
    FilterSyntaxError
        If the expression does not parse.
    FilterFieldError
        For the first field (in reading order) that is not in its schema: its position, a caret under it, the
        nearest known name ("did you mean GENRES?") and the fields there are.
    """
    parsed = parse_filter(expression)
    named: list[tuple[int, str, str, str]] = []  # (position, dataset, element as written, field)
    for part in parsed.expressions:
        for cond in _conditions(part.where):
            if cond.dataset == "Items":
                named.append((_field_position(expression, cond.position), "items", "Items", cond.field))
            named.extend((_field_position(expression, v.position), "items", "CurrentItem", v.field)
                         for v in cond.values if isinstance(v, CurrentItemRef))
        named.extend((_field_position(expression, c.position), "users", "CurrentUser", c.field)
                     for c in part.condition)
    for position, dataset, element, name in sorted(named):
        known = fields.get(dataset)
        id_field = _ID_FIELDS[dataset]
        usable = None if known is None else tuple(n for n in known if n != id_field)
        if usable is not None and name in usable:
            continue
        where = f"{element}.{name}"
        near = None if not usable else Advice("unknown_field", name, dataset, usable).nearest()
        fields_text = ", ".join(usable or ()) or "none but the id"
        if name == id_field:
            message = f"cannot filter on the {dataset[:-1]} id {where}"
            hint = f"the {dataset} schema's fields: {fields_text}"
        elif usable is None:
            message = f"unknown field {where}"
            hint = (f"the dataset group has no {dataset} schema yet: import {dataset} with a schema that has {name} "
                    "before creating a filter on it")
        else:
            message = f"unknown field {where}"
            guess = f"did you mean {near}? " if near else ""
            hint = f"the {dataset} schema has no field {name}: {guess}(its fields: {fields_text})"
        raise FilterFieldError(message, expression, position, dataset=dataset, field=name, known=usable,
                               suggestion=near, hint=hint)
    return parsed


# --------------------------------------------------------------------------------------------------- catalogue


def _is_missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _number_token(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _tokens(value: Any) -> list[str]:
    """The string tokens an item value matches with ``IN``/``=``: ``|``-split strings, canonical numbers."""
    if _is_missing(value):
        return []
    if isinstance(value, bool | np.bool_):
        return ["true" if value else "false"]
    if isinstance(value, int | float | np.integer | np.floating):
        return [_number_token(float(value))]
    return [token for token in str(value).split("|") if token != ""]


def _as_number(value: Any) -> float:
    """A value as a float, or NaN when it is not a (single) number."""
    if _is_missing(value) or isinstance(value, bool | np.bool_):
        return math.nan
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return math.nan


_catalog_ids = itertools.count()


class ItemCatalog:
    """Item metadata indexed for vectorised filter evaluation.

    For every field it precomputes an inverted index (token -> dense item indices; categorical values are
    split on ``|``, numbers use a canonical text form, booleans ``"true"``/``"false"``) and a ``float64``
    array of numeric values (NaN where an item has no number). Building loops over items once; compiling a
    filter afterwards only does numpy work over these arrays.

    Parameters
    ----------
    items : Vocabulary or sequence of str
        The catalogue's raw item ids in dense order (mask position ``i`` is item ``i``).
    metadata : mapping of str to mapping
        ``{item_id: {"GENRE": "Comedy|Drama", "PRICE": 12.5, ...}}`` as the store returns it. Items without
        an entry, and fields that are None, NaN or ``""``, count as missing. Ids not in ``items`` are ignored.

    Examples
    --------
    >>> catalog = ItemCatalog(["a", "b"], {"a": {"GENRE": "Comedy|Drama"}, "b": {"GENRE": "Horror"}})
    >>> compile_filter(parse_filter('INCLUDE ItemID WHERE Items.GENRE IN ("Drama")'), catalog).tolist()
    [True, False]
    """

    def __init__(self, items: Vocabulary | Sequence[str], metadata: Mapping[str, Mapping[str, Any]]) -> None:
        self.vocabulary = items if isinstance(items, Vocabulary) else Vocabulary(list(items))
        self.token = next(_catalog_ids)  # identifies this catalogue in FilterCache keys
        n = len(self.vocabulary)
        self._metadata: dict[str, Mapping[str, Any]] = {}
        postings: dict[str, dict[str, list[int]]] = {}
        numbers: dict[str, np.ndarray] = {}
        present: dict[str, np.ndarray] = {}
        for raw, index in zip(self.vocabulary.ids.tolist(), range(n), strict=True):
            row = metadata.get(raw)
            if not row:
                continue
            self._metadata[raw] = row
            for name, value in row.items():
                if _is_missing(value):
                    continue
                if name not in present:
                    present[name] = np.zeros(n, dtype=bool)
                    numbers[name] = np.full(n, np.nan)
                    postings[name] = {}
                present[name][index] = True
                numbers[name][index] = _as_number(value)
                field_postings = postings[name]
                for token in _tokens(value):
                    field_postings.setdefault(token, []).append(index)
        self._present = present
        self._numbers = numbers
        self._index = {name: {token: np.asarray(ids, dtype=np.int64) for token, ids in by_token.items()}
                       for name, by_token in postings.items()}

    def __len__(self) -> int:
        return len(self.vocabulary)

    @property
    def fields(self) -> list[str]:
        """Names of the fields at least one item has."""
        return sorted(self._present)

    def item_value(self, item_id: str, name: str) -> Any:
        """The raw value of one item's field (None when missing).

        Raises
        ------
        UnknownIdError
            If the item is not in the catalogue.
        """
        if item_id not in self.vocabulary:
            raise UnknownIdError(f"unknown current item {item_id!r} (the catalogue has {len(self)} items)")
        value = self._metadata.get(item_id, {}).get(name)
        return None if _is_missing(value) else value

    def _check_field(self, name: str, position: int) -> None:
        if name not in self._present:
            raise FilterError(f"Items.{name} (at position {position}) is not a field of any item in the "
                              f"catalogue; known fields: {', '.join(self.fields) or 'none'}")

    def equals_any(self, name: str, values: Iterable[Any]) -> np.ndarray:
        """Items whose field matches any of ``values`` (token match, or numeric equality for numbers)."""
        mask = np.zeros(len(self), dtype=bool)
        index = self._index.get(name, {})
        numbers = self._numbers.get(name)
        for value in values:
            for token in _tokens(value) if not isinstance(value, str) else [value]:
                hits = index.get(token)
                if hits is not None:
                    mask[hits] = True
            number = _as_number(value)
            if numbers is not None and not math.isnan(number):
                mask |= numbers == number
        return mask

    def compare(self, name: str, op: str, number: float) -> np.ndarray:
        """Items whose numeric field satisfies ``field op number`` (NaN, i.e. missing, never does)."""
        numbers = self._numbers.get(name)
        if numbers is None:
            return np.zeros(len(self), dtype=bool)
        ufunc = {"<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal, "=": np.equal}[op]
        return ufunc(numbers, number)

    def present(self, name: str) -> np.ndarray:
        """Items that have a value for the field."""
        mask = self._present.get(name)
        return np.zeros(len(self), dtype=bool) if mask is None else mask


# --------------------------------------------------------------------------------------------------- compile


def check_filter_values(values: Mapping[str, Any] | None) -> None:
    """Refuse ``$PARAM`` values over the limits, before any work is done with them.

    :func:`compile_filter` and :meth:`FilterCache.get` call it first; call it yourself to validate a request early.

    Parameters
    ----------
    values : mapping, optional
        Parameter name -> one value (a string in Personalize's quoted form ``"A","B"`` is several, see
        :func:`parse_filter_value`), or a list (any sized collection) of values.

    Raises
    ------
    FilterError
        Naming the parameter: more than :data:`FILTER_MAX_PARAMETERS` parameters, more than
        :data:`FILTER_MAX_VALUES` values for one (a list's elements, or the values of one quoted string), a value
        (or a name) longer than :data:`FILTER_MAX_VALUE_LENGTH` characters, or values that are neither one value
        nor a list; a :class:`FilterValueError` for a value :func:`parse_filter_value` refuses (a malformed
        quoted form, or only empty values).
    """
    if not values:
        return
    if not isinstance(values, Mapping):
        raise FilterError(f"filter values must be a mapping of parameter name to value(s), got "
                          f"{type(values).__name__}")
    if len(values) > FILTER_MAX_PARAMETERS:
        raise FilterError(f"filter values bind {len(values):,} parameters; at most {FILTER_MAX_PARAMETERS} are "
                          "allowed (Personalize's limit)")
    for name, value in values.items():
        if not isinstance(name, str) or len(name) > FILTER_MAX_VALUE_LENGTH:
            shown = repr(name[:60] + "...") if isinstance(name, str) else repr(name)
            raise FilterError(f"filter value name {shown} must be a string of at most {FILTER_MAX_VALUE_LENGTH:,} "
                              "characters")
        if value is None:
            continue
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            many: Iterable[Any] = (value,)
        elif isinstance(value, Sized):
            if len(value) > FILTER_MAX_VALUES:
                raise FilterError(f"filter value ${name} has {len(value):,} values; at most {FILTER_MAX_VALUES} "
                                  "are allowed per parameter")
            many = value
        else:
            raise FilterError(f"filter value ${name} must be one value or a list of values, got "
                              f"{type(value).__name__}")
        for item in many:
            if isinstance(item, str | bytes) and len(item) > FILTER_MAX_VALUE_LENGTH:
                raise FilterError(f"a value of filter value ${name} is {len(item):,} characters long; at most "
                                  f"{FILTER_MAX_VALUE_LENGTH:,} are allowed (it starts {item[:40]!r})")
        parsed = parse_filter_value(value, name)  # a malformed quoted form, only empty values
        if len(parsed) > FILTER_MAX_VALUES:
            raise FilterError(f"filter value ${name} holds {len(parsed):,} quoted values; at most {FILTER_MAX_VALUES} "
                              "are allowed per parameter")


class _Unbound(Exception):
    """A parameter (or CurrentItem) the request did not provide; carries its name."""


def _quoted_values(text: str, name: str) -> list[str]:
    """The values of Personalize's quoted form ``"A", "B"`` (``text`` starts with ``"`` after spaces)."""
    values: list[str] = []
    i, n = len(text) - len(text.lstrip()), len(text)
    while True:
        opened, chars = i, []
        i += 1
        while True:
            if i >= n:
                raise FilterValueError('unterminated quoted value: no closing " for the value opened', name, text,
                                       opened)
            char = text[i]
            if char == "\\" and i + 1 < n and text[i + 1] in '"\\':
                chars.append(text[i + 1])
                i += 2
            elif char == '"':
                i += 1
                break
            else:
                chars.append(char)
                i += 1
        values.append("".join(chars))
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            return values
        if text[i] != ",":
            raise FilterValueError(f"expected , between quoted values, got {text[i]!r}", name, text, i)
        comma = i
        i += 1
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            raise FilterValueError("trailing comma: expected a quoted value after it", name, text, comma)
        if text[i] != '"':
            raise FilterValueError(f'expected a double-quoted value after the comma, got {text[i]!r}', name, text, i)


def parse_filter_value(value: Any, name: str) -> list[Any]:
    """The values one ``$PARAM`` binds, from a request's value in either form Personalize's callers send.

    - A string whose first character (after spaces) is ``"`` is Personalize's quoted form
      (``filterValues: {"GENRE": "\\"Comedy\\",\\"Drama\\""}``): double-quoted values separated by commas,
      spaces around the commas allowed, ``\\"`` and ``\\\\`` escapes inside a value.
    - Any other string is one value, as it is (``"Comedy"``; ``"10"``, which also matches and compares with
      numeric fields, is how Personalize writes numbers).
    - A number or a boolean is one value; a list (any iterable but a string) is its elements, each as it is.

    Every path that binds filter values (:func:`compile_filter`, :func:`check_filter_values`,
    :class:`FilterCache`) goes through this function, so the HTTP routes, the Personalize runtime, promotions,
    batch jobs, the CLI and the console all read values the same way.

    Parameters
    ----------
    value : Any
        The request's value for the parameter (not None: None means the parameter was omitted).
    name : str
        The parameter's name, for the error message.

    Returns
    -------
    list
        The values (an empty list for an empty list: a set of no values, which matches nothing).

    Raises
    ------
    FilterValueError
        A :class:`~recsmith.errors.FilterError` naming the parameter, the value and the position: for a malformed
        quoted form (an unterminated quote, text between values that is not a comma, a trailing comma), or a
        value that is only empty strings (``""``, ``"\\"\\""``, ``[""]``), which no item can match.

    Examples
    --------
    >>> parse_filter_value('"Comedy", "Drama"', "GENRE")
    ['Comedy', 'Drama']
    >>> parse_filter_value("Comedy", "GENRE"), parse_filter_value(["Comedy", "Drama"], "GENRE")
    (['Comedy'], ['Comedy', 'Drama'])
    >>> parse_filter_value('"say \\\\"hi\\\\""', "TITLE")
    ['say "hi"']
    """
    if isinstance(value, str):
        many: list[Any] = _quoted_values(value, name) if value.lstrip().startswith('"') else [value]
    elif isinstance(value, bytes) or not isinstance(value, Iterable):
        return [value]
    else:
        many = list(value)
    if many and all(isinstance(v, str | bytes) and not v for v in many):
        raise FilterValueError(f"{'is empty' if many == [value] else 'holds only empty values'}: no item has an "
                               f"empty value, so it would match nothing; give a value (or leave ${name} out to turn "
                               "off an EXCLUDE part that uses it)", name, value)
    return many


def _bound(values: Mapping[str, Any], name: str) -> list[Any]:
    if name not in values or values[name] is None:
        raise _Unbound(name)
    return parse_filter_value(values[name], name)


def _operand_values(operand: Operand, values: Mapping[str, Any], catalog: ItemCatalog,
                    current_item: str | None) -> list[Any]:
    """The concrete values an operand stands for (several for a multi-valued parameter or categorical field)."""
    if isinstance(operand, Literal):
        return [operand.value]
    if isinstance(operand, Param):
        return _bound(values, operand.name)
    if current_item is None:
        raise advise(FilterError(f"the filter uses CurrentItem.{operand.field}, which only a related-items request "
                                 "has"), Advice("current_item", operand.field, "items"),
                     "pass item_id= (current_item= to compile_filter)")
    value = catalog.item_value(current_item, operand.field)
    if value is None:
        return []
    return [value] if isinstance(value, int | float | bool | np.number) else _tokens(value)


def _single_number(values: list[Any], where: str) -> float | None:
    """The one number a comparison needs; None when there is no value (a missing CurrentItem field)."""
    if not values:
        return None
    if len(values) != 1:
        raise FilterError(f"{where} compares with one value, got {len(values)}: {values!r}")
    number = _as_number(values[0])
    if math.isnan(number):
        raise FilterError(f"{where} compares numbers; {values[0]!r} is not a number")
    return number


def _eval_condition(cond: Condition, catalog: ItemCatalog, values: Mapping[str, Any], current_item: str | None,
                    interactions: Mapping[str, Any]) -> np.ndarray:
    n = len(catalog)
    concrete = [v for operand in cond.values for v in _operand_values(operand, values, catalog, current_item)]
    if cond.dataset == "Interactions":
        mask = np.zeros(n, dtype=bool)
        for event_type in concrete:
            key = event_type if isinstance(event_type, str) else _tokens(event_type)[0]
            indices = interactions.get(key)
            if indices is None or len(indices) == 0:
                continue
            array = np.fromiter(indices, dtype=np.int64) if not isinstance(indices, np.ndarray) \
                else indices.astype(np.int64, copy=False)
            if array.min() < 0 or array.max() >= n:
                raise FilterError(f"interactions[{key!r}] holds dense index {int(array.max())} or "
                                  f"{int(array.min())}, outside the catalogue (0..{n - 1})")
            mask[array] = True
        return mask
    catalog._check_field(cond.field, cond.position)
    if cond.op in ("IN", "NOT IN"):
        if not concrete and any(isinstance(o, CurrentItemRef) for o in cond.values) \
                and not any(isinstance(o, Literal | Param) for o in cond.values):
            return np.zeros(n, dtype=bool)  # the current item lacks the field: unknown, so the condition fails
        hit = catalog.equals_any(cond.field, concrete)
        return hit if cond.op == "IN" else catalog.present(cond.field) & ~hit
    if cond.op == "=":
        if not concrete:
            return np.zeros(n, dtype=bool)
        return catalog.equals_any(cond.field, concrete)
    number = _single_number(concrete, f"Items.{cond.field} {cond.op}")
    if number is None:
        return np.zeros(n, dtype=bool)
    return catalog.compare(cond.field, cond.op, number)


def _eval_node(node: Node, *args: Any) -> np.ndarray:
    if isinstance(node, Condition):
        return _eval_condition(node, *args)
    masks = (_eval_node(term, *args) for term in node.terms)
    result = next(masks).copy()
    for mask in masks:
        if isinstance(node, And):
            result &= mask
        else:
            result |= mask
    return result


def _user_holds(cond: UserCondition, user: Mapping[str, Any] | None, values: Mapping[str, Any]) -> bool:
    concrete = [v for operand in cond.values
                for v in ([operand.value] if isinstance(operand, Literal) else _bound(values, operand.name))]
    value = None if user is None else user.get(cond.field)
    if _is_missing(value):
        return False
    if cond.op in ("IN", "NOT IN", "="):
        tokens = set(_tokens(value))
        number = _as_number(value)
        hit = any((v in tokens) if isinstance(v, str) else bool(set(_tokens(v)) & tokens) for v in concrete) or \
            (not math.isnan(number) and any(_as_number(v) == number for v in concrete))
        return hit if cond.op != "NOT IN" else not hit
    target = _single_number(concrete, f"CurrentUser.{cond.field} {cond.op}")
    number = _as_number(value)
    if target is None or math.isnan(number):
        return False
    return {"<": number < target, ">": number > target, "<=": number <= target, ">=": number >= target}[cond.op]


def compile_filter(filter: Filter | str, catalog: ItemCatalog, *, values: Mapping[str, ParamValue] | None = None,
                   user: Mapping[str, Any] | None = None, current_item: str | None = None,
                   interactions: Mapping[str, Iterable[int]] | None = None) -> np.ndarray:
    """Evaluate a filter for one request: which catalogue items may be recommended.

    Parameters
    ----------
    filter : Filter or str
        A parsed filter, or its text.
    catalog : ItemCatalog
        The items and their metadata.
    values : mapping, optional
        ``$PARAM`` values, by name (case-sensitive, as in Personalize). A value is one string/number, a string in
        Personalize's quoted form (``'"Comedy","Drama"'``), or a list of values (a list or a quoted string fills
        ``IN ($P)`` with several values); :func:`parse_filter_value` reads each. Values are bound as data, never
        spliced into text. A string that reads as a number also matches numeric fields and can be compared
        (``<``, ...).
    user : mapping, optional
        The current user's metadata, for ``IF CurrentUser.FIELD ...`` conditions (missing field: false).
    current_item : str, optional
        Raw id of the item a related-items request is about, for ``CurrentItem.FIELD``.
    interactions : mapping of str to iterable of int, optional
        Event type -> dense item indices the current user interacted with through it.

    Returns
    -------
    numpy.ndarray
        ``bool[len(catalog)]``, True where the item may be recommended (a new, writable array).

    Raises
    ------
    FilterError
        ``values`` over the limits or malformed (see :func:`check_filter_values`); an ``INCLUDE`` expression uses a
        parameter that has no value; a field no item has; a comparison with a value that is not a number;
        ``CurrentItem`` without ``current_item``.
    UnknownIdError
        ``current_item`` is not in the catalogue.

    Notes
    -----
    Combining expressions with ``|`` follows "Combining multiple expressions" in the Personalize developer
    guide (https://docs.aws.amazon.com/personalize/latest/dg/multiple-expression-example.html): each expression
    is evaluated on its own; ``Include A | Include B`` includes the union of A and B, ``Exclude A | Exclude B``
    excludes the union, and ``Include A | Include B | Exclude C | Exclude D`` is ``(A or B) - (C or D)``, in any
    order. So the mask is ``(OR of active INCLUDE parts, or all items if none is active) AND NOT (OR of active
    EXCLUDE parts)``.

    An expression is *inactive* when its ``IF CurrentUser...`` condition does not hold (it applies only when
    the condition holds), or when it is an ``EXCLUDE`` expression with a parameter that has no value: the
    GetRecommendations ``filterValues`` reference says "For filter expressions that use an INCLUDE element to
    include items, you must provide values for all parameters that are defined in the expression. For
    filters with expressions that use an EXCLUDE element to exclude items, you can omit the filter-values. In
    this case, Amazon Personalize doesn't use that portion of the expression" (we drop the whole ``|`` part).
    A parameter bound to ``None`` counts as omitted; one bound to an empty list matches nothing.

    Items missing a field fail every condition on it, ``NOT IN`` included; when ``CurrentItem.FIELD`` is
    missing on the current item, conditions using it fail for every item.
    """
    check_filter_values(values)
    parsed = parse_filter(filter) if isinstance(filter, str) else filter
    values = values or {}
    interactions = interactions or {}
    n = len(catalog)
    include: np.ndarray | None = None
    exclude = np.zeros(n, dtype=bool)
    for expression in parsed.expressions:
        try:
            if not all(_user_holds(c, user, values) for c in expression.condition):
                continue
            mask = _eval_node(expression.where, catalog, values, current_item, interactions)
        except _Unbound as unbound:
            if expression.action == "EXCLUDE":
                continue
            name = unbound.args[0]
            raise advise(FilterError(f"INCLUDE expression {expression} needs a value for ${name}"),
                         Advice("filter_value", name, names=parsed.parameters),
                         f"pass filter_values={{{name!r}: ...}} (values= to compile_filter)") from None
        if expression.action == "INCLUDE":
            include = mask if include is None else include | mask
        else:
            exclude |= mask
    allowed = np.ones(n, dtype=bool) if include is None else include.copy()
    allowed &= ~exclude
    return allowed


# --------------------------------------------------------------------------------------------------- cache


ITEM_ATTRIBUTES_PREFIX = "INCLUDE ItemID WHERE "


def item_attribute_mask(expression: str, catalog: ItemCatalog) -> np.ndarray:
    """The items an Item-Attribute-Affinity expression selects (a batch segment job's ``itemAttributes``, such as
    ``ITEMS.GENRES = "Comedy" AND ITEMS.PRICE < 20``): the ``WHERE`` part of an ``INCLUDE ItemID`` filter on
    ``Items`` fields, evaluated on ``catalog``.

    Raises
    ------
    FilterError
        If the expression does not parse (the position is in ``expression`` itself), names a field the items do
        not have, or uses parameters, ``Interactions``, ``CurrentItem`` or ``CurrentUser`` (an attribute
        expression stands alone).
    """
    text = ITEM_ATTRIBUTES_PREFIX + expression
    try:
        parsed = parse_filter(text)
    except FilterSyntaxError as exc:
        message = str(exc).split(" at position ", 1)[0]
        raise FilterSyntaxError(message, expression, max(exc.position - len(ITEM_ATTRIBUTES_PREFIX), 0)) from None
    if len(parsed.expressions) != 1 or parsed.expressions[0].condition or parsed.parameters \
            or parsed.uses_interactions or parsed.current_item_fields:
        raise FilterError(f"itemAttributes {expression!r}: use conditions on ITEMS fields only (no $PARAM, "
                          "Interactions, CurrentItem, CurrentUser or |)")
    return compile_filter(parsed, catalog)


def _freeze(value: Any) -> Any:
    """A bound value as a hashable tuple (a scalar is a 1-tuple, so ``"x"`` and ``["x"]`` share a key)."""
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return (value,)
    return tuple(value)


def _size_of(key: Any) -> int:
    """Bytes a cache key holds: ``sys.getsizeof`` of it and of everything in it (tuples, frozensets, strings)."""
    total, stack, seen = 0, [key], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, tuple | list | frozenset | set):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
    return total


class FilterCache:
    """A thread-safe LRU cache of compiled masks, bounded by bytes, so repeated requests reuse them.

    The key is built from exactly what the mask depends on:

    - the canonical filter text (``str(parse_filter(expression))``, so spelling and spacing variants share);
    - the catalogue's identity (``catalog.token``; a rebuilt catalogue never reuses old masks);
    - the bound values of every ``$PARAM`` the filter uses (``None`` when omitted), as :func:`parse_filter_value`
      reads them, frozen to tuples (a scalar, a one-element list and the quoted form ``'"x"'`` share a key);
    - the user's values of the fields named by ``IF CurrentUser.FIELD`` (only when the filter has ``IF``);
    - ``current_item`` (only when the filter uses ``CurrentItem``);
    - the user's interacted items for the event types present in ``interactions`` (only when the filter
      uses ``Interactions``), as frozensets; pass ``interactions_key`` (e.g. the user id and the version of their
      history) instead to avoid hashing long histories.

    Each entry is accounted as its mask's ``nbytes`` plus its key's size (``sys.getsizeof`` of the key and all it
    holds); the least recently used entries are dropped while the total is over ``max_bytes``. A request whose key
    is bigger than ``max_key_bytes``, or whose entry alone exceeds ``max_bytes``, is compiled and answered but not
    cached.

    Cached masks are read-only numpy arrays shared between requests; copy one before changing it.

    Parameters
    ----------
    maxsize : int, optional
        Most entries to keep as well (default: no limit but the bytes).
    max_bytes : int
        Byte budget of masks plus keys (default :data:`FILTER_CACHE_BYTES`; 0 caches nothing).
    max_key_bytes : int
        Largest key that is cached (default :data:`FILTER_CACHE_MAX_KEY_BYTES`).

    Attributes
    ----------
    nbytes : int
        Bytes accounted to the cached entries now (never more than ``max_bytes``).
    hits, misses : int
        Lookups answered from the cache, and compiled.
    """

    def __init__(self, maxsize: int | None = None, *, max_bytes: int = FILTER_CACHE_BYTES,
                 max_key_bytes: int = FILTER_CACHE_MAX_KEY_BYTES) -> None:
        if maxsize is not None and maxsize < 1:
            raise FilterError(f"maxsize must be at least 1, got {maxsize}")
        if max_bytes < 0 or max_key_bytes < 0:
            raise FilterError(f"max_bytes and max_key_bytes must be at least 0, got {max_bytes} and {max_key_bytes}")
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.max_key_bytes = max_key_bytes
        self._masks: OrderedDict[tuple[Any, ...], tuple[np.ndarray, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._masks)

    def key(self, filter: Filter, catalog: ItemCatalog, *, values: Mapping[str, Any] | None = None,
            user: Mapping[str, Any] | None = None, current_item: str | None = None,
            interactions: Mapping[str, Iterable[int]] | None = None,
            interactions_key: Any = None) -> tuple[Any, ...]:
        """The cache key of one request (see the class docstring for what goes in)."""
        values = values or {}
        params = tuple((name, None if values.get(name) is None else tuple(parse_filter_value(values[name], name)))
                       for name in filter.parameters)
        user_part = tuple((name, _freeze(None if user is None else user.get(name))) for name in filter.user_fields)
        item_part = current_item if filter.current_item_fields else None
        history: Any = None
        if filter.uses_interactions:
            history = interactions_key if interactions_key is not None else tuple(sorted(
                (event, frozenset(int(i) for i in items)) for event, items in (interactions or {}).items()))
        return (str(filter), catalog.token, params, user_part, item_part, history)

    def get(self, filter: Filter | str, catalog: ItemCatalog, *, values: Mapping[str, ParamValue] | None = None,
            user: Mapping[str, Any] | None = None, current_item: str | None = None,
            interactions: Mapping[str, Iterable[int]] | None = None, interactions_key: Any = None) -> np.ndarray:
        """The mask for a request, compiled with :func:`compile_filter` on a miss.

        Parameters are those of :func:`compile_filter`, plus ``interactions_key`` (see the class docstring).

        Returns
        -------
        numpy.ndarray
            Read-only ``bool[len(catalog)]``; equal keys return the same array object while it is cached.
        """
        check_filter_values(values)  # before a key is built from them
        parsed = parse_filter(filter) if isinstance(filter, str) else filter
        key = self.key(parsed, catalog, values=values, user=user, current_item=current_item,
                       interactions=interactions, interactions_key=interactions_key)
        with self._lock:
            entry = self._masks.get(key)
            if entry is not None:
                self._masks.move_to_end(key)
                self.hits += 1
                return entry[0]
            self.misses += 1
        mask = compile_filter(parsed, catalog, values=values, user=user, current_item=current_item,
                              interactions=interactions)
        mask.flags.writeable = False
        key_bytes = _size_of(key)
        size = mask.nbytes + key_bytes
        if key_bytes > self.max_key_bytes or size > self.max_bytes:
            return mask
        with self._lock:
            existing = self._masks.get(key)
            if existing is not None:  # another thread compiled it meanwhile: share one object
                return existing[0]
            self._masks[key] = (mask, size)
            self.nbytes += size
            while self.nbytes > self.max_bytes or (self.maxsize is not None and len(self._masks) > self.maxsize):
                _, (_, dropped) = self._masks.popitem(last=False)
                self.nbytes -= dropped
        return mask

    def clear(self) -> None:
        """Drop every cached mask."""
        with self._lock:
            self._masks.clear()
            self.nbytes = 0
