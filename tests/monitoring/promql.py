"""The metric names (and the label names matched on each) that a PromQL expression reads.

A small tokenizer rather than a regular expression over the text: strings, durations, numbers,
function and aggregation names, the label lists of `by`/`without`/`on`/`ignoring`/`group_left`/
`group_right`, ranges and subqueries, and Grafana's `$variables` are all told apart from metric
names. promtool has no command that prints an expression's selectors; `promtool check rules`
(tests/monitoring/check.py) proves each expression parses, this module says what it reads.
"""

import re

_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\])
  | (?P<number>(?:0x[0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)(?:[smhdwy]|ms)?(?:[0-9]+(?:ms|[smhdwy]))*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>(){}\[\],@])
""", re.VERBOSE)

# Words that are never metric names where they stand.
KEYWORDS = {"and", "or", "unless", "atan2", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan", "start", "end"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                "topk", "quantile", "limitk", "limit_ratio"}


class PromQLError(ValueError):
    pass


def tokens(expr):
    pos, result = 0, []
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise PromQLError("cannot read %r at %d: %r" % (expr, pos, expr[pos:pos + 20]))
        pos = match.end()
        if match.lastgroup != "space":
            result.append((match.lastgroup, match.group()))
    return result


def _skip_group(toks, index, opening, closing):
    """The index after the group that opens at ``index`` (balanced)."""
    depth = 0
    for position in range(index, len(toks)):
        if toks[position] == ("op", opening):
            depth += 1
        elif toks[position] == ("op", closing):
            depth -= 1
            if depth == 0:
                return position + 1
    raise PromQLError("unbalanced %s in expression" % opening)


def _matchers(toks, index):
    """(label names, {label: value}, index after '}') of the matcher list opening at ``index``."""
    end = _skip_group(toks, index, "{", "}")
    names, values = set(), {}
    inner = toks[index + 1:end - 1]
    for position, (kind, text) in enumerate(inner):
        if kind == "ident" and position + 1 < len(inner) and inner[position + 1][0] == "op" \
                and inner[position + 1][1] in ("=", "!=", "=~", "!~"):
            names.add(text)
            if inner[position + 1][1] == "=" and position + 2 < len(inner) and inner[position + 2][0] == "string":
                values[text] = inner[position + 2][1][1:-1]
    return names, values, end


def selectors(expr):
    """{metric name: set of label names matched on it} for every vector selector of ``expr``."""
    toks = tokens(expr)
    for opening, closing in ("()", "{}", "[]"):
        depth = 0
        for tok in toks:
            depth += (tok == ("op", opening)) - (tok == ("op", closing))
            if depth < 0:
                break
        if depth != 0:
            raise PromQLError("unbalanced %s%s in %r" % (opening, closing, expr))
    found = {}
    index = 0
    while index < len(toks):
        kind, text = toks[index]
        following = toks[index + 1] if index + 1 < len(toks) else (None, None)
        if kind == "op" and text == "[":
            index = _skip_group(toks, index, "[", "]")  # a range or subquery: durations, variables
            continue
        if kind == "ident" and text.lower() in LABEL_LISTS:
            index += 1
            if index < len(toks) and toks[index] == ("op", "("):
                index = _skip_group(toks, index, "(", ")")
            continue
        if kind == "ident" and (following == ("op", "(") or (
                text.lower() in AGGREGATIONS and following[0] == "ident" and following[1].lower() in ("by", "without"))):
            index += 1  # a function or an aggregation: what follows is its argument
            continue
        if kind == "ident" and text.lower() not in KEYWORDS:
            labels = set()
            index += 1
            if index < len(toks) and toks[index] == ("op", "{"):
                labels, _values, index = _matchers(toks, index)
            found.setdefault(text, set()).update(labels)
            continue
        if kind == "op" and text == "{":  # {__name__="..."} without a name in front
            labels, values, index = _matchers(toks, index)
            if "__name__" not in values:
                raise PromQLError("a selector without a metric name in %r" % expr)
            found.setdefault(values["__name__"], set()).update(labels - {"__name__"})
            continue
        index += 1
    return found
