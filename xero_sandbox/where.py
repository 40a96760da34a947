"""A small interpreter for Xero's `where` query parameter (a C#/LINQ-like expression).

Supported: `Field=="x"`, `!=`, `>`, `>=`, `<`, `<=` against strings, numbers, true/false,
null, Guid("..."), DateTime(y,m,d[,h,mi,s]); `Field.Contains("x")`, `.StartsWith`, `.EndsWith`;
dotted fields (`Contact.ContactID`); `&&`/`AND`, `||`/`OR`, `!`/`NOT` and parentheses.
String comparisons are case-sensitive, as in .NET (the stricter reading; not confirmed for
Xero, whose docs suggest `Name.ToLower()` for case-insensitive matching, which is also accepted).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

TOKEN_RE = re.compile(
    r"""\s*(?:
    (?P<string>"(?:[^"\\]|\\.)*")
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<op>==|!=|>=|<=|&&|\|\||[=<>!().,])
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


class WhereError(ValueError):
    pass


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            raise WhereError(f"Unexpected character at position {pos} in where clause")
        pos = match.end()
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "ident" and value.upper() in {"AND", "OR", "NOT"}:
            kind, value = "op", {"AND": "&&", "OR": "||", "NOT": "!"}[value.upper()]
        tokens.append((kind, value))
    return tokens


def _get(doc: Any, path: list[str]) -> Any:
    value = doc
    for part in path:
        if isinstance(value, dict):
            match = next((k for k in value if k.lower() == part.lower()), None)
            value = value.get(match) if match else None
        else:
            return None
    return value


def _coerce(field: Any, literal: Any) -> tuple[Any, Any]:
    if (
        isinstance(literal, datetime)
        and isinstance(field, date)
        and not isinstance(field, datetime)
    ):
        return field, literal.date() if literal.time() == datetime.min.time() else literal
    if isinstance(literal, datetime) and isinstance(field, datetime):
        return field.replace(tzinfo=None), literal
    if isinstance(literal, Decimal) and field is not None and not isinstance(field, Decimal):
        try:
            return Decimal(str(field)), literal
        except ArithmeticError:
            return field, literal
    if isinstance(literal, str) and isinstance(literal, str) and literal.startswith("guid:"):
        return (str(field).lower() if field else None), literal[5:].lower()
    return field, literal


class Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise WhereError(f"Expected {value or 'token'} in where clause")
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.parse_or()
        if self.peek() is not None:
            raise WhereError(f"Unexpected {self.peek()[1]!r} in where clause")  # type: ignore[index]
        return predicate

    def parse_or(self) -> Predicate:
        left = self.parse_and()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.parse_and()
            left = (lambda a, b: lambda d: a(d) or b(d))(left, right)
        return left

    def parse_and(self) -> Predicate:
        left = self.parse_unary()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.parse_unary()
            left = (lambda a, b: lambda d: a(d) and b(d))(left, right)
        return left

    def parse_unary(self) -> Predicate:
        if self.peek() == ("op", "!"):
            self.take()
            inner = self.parse_unary()
            return lambda d: not inner(d)
        if self.peek() == ("op", "("):
            self.take()
            inner = self.parse_or()
            self.take(")")
            return inner
        return self.parse_comparison()

    def parse_literal(self) -> Any:
        kind, value = self.take()
        if kind == "string":
            # Only \" and \\ are escapes; "unicode_escape" would mangle non-ASCII names.
            return re.sub(r"\\(.)", r"\1", value[1:-1])
        if kind == "number":
            return Decimal(value)
        if kind == "ident":
            lowered = value.lower()
            if lowered in {"true", "false"}:
                return lowered == "true"
            if lowered == "null":
                return None
            if lowered == "guid":
                self.take("(")
                inner = self.parse_literal()
                self.take(")")
                return "guid:" + str(inner)
            if lowered == "datetime":
                if self.peek() == ("op", "."):
                    self.take(".")
                    self.take()  # Parse
                    self.take("(")
                    text = self.parse_literal()
                    self.take(")")
                    return datetime.fromisoformat(str(text))
                self.take("(")
                parts = [int(self.parse_literal())]
                while self.peek() == ("op", ","):
                    self.take(",")
                    parts.append(int(self.parse_literal()))
                self.take(")")
                y, mo, d, h, mi, s = (parts + [0, 0, 0])[:6]
                return datetime(y, mo, d, h, mi, s)  # noqa: DTZ001 - Xero's literals are naive
        raise WhereError(f"Unexpected {value!r} in where clause")

    def parse_comparison(self) -> Predicate:
        kind, name = self.take()
        if kind != "ident":
            raise WhereError(f"Expected a field name, got {name!r}")
        path = [name]
        lower = False
        while self.peek() == ("op", "."):
            self.take(".")
            _, member = self.take()
            if self.peek() == ("op", "("):
                self.take("(")
                if member in {"ToLower", "ToUpper"}:
                    self.take(")")
                    lower = True
                    continue
                argument = self.parse_literal()
                self.take(")")
                return self._method(path, member, argument, lower)
            path.append(member)
        kind, op = self.take()
        if kind != "op" or op not in {"==", "=", "!=", ">", ">=", "<", "<="}:
            raise WhereError(f"Unexpected {op!r} in where clause")
        literal = self.parse_literal()

        def predicate(doc: dict[str, Any]) -> bool:
            field, value = _coerce(_get(doc, path), literal)
            if lower and isinstance(field, str):
                field = field.lower()
            try:
                if op in {"==", "="}:
                    return bool(field == value)
                if op == "!=":
                    return bool(field != value)
                if field is None or value is None:
                    return False
                return bool(
                    {
                        ">": field > value,
                        ">=": field >= value,
                        "<": field < value,
                        "<=": field <= value,
                    }[op]
                )
            except TypeError:
                return False

        return predicate

    @staticmethod
    def _method(path: list[str], member: str, argument: Any, lower: bool) -> Predicate:
        if member not in {"Contains", "StartsWith", "EndsWith"}:
            raise WhereError(f"Method {member} is not supported in where clause")

        def predicate(doc: dict[str, Any]) -> bool:
            field = _get(doc, path)
            if not isinstance(field, str):
                return False
            if lower:
                field = field.lower()
            text = str(argument)
            if member == "Contains":
                return text in field
            if member == "StartsWith":
                return field.startswith(text)
            return field.endswith(text)

        return predicate


def compile_where(text: str | None) -> Predicate | None:
    if not text or not text.strip():
        return None
    return Parser(text).parse()
