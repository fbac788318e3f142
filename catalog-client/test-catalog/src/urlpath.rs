//! The subset of ERMrest's URL grammar that DerivaML's clients use, parsed for the
//! test catalog: table roots with aliases, filters (`=`, `::null::`, comparisons, `any(...)`,
//! `;`, `&`, `!`, parentheses), projections with `alias:=col` renames, and `@sort`/`@after`.

use percent_encoding::percent_decode_str;

/// A filter expression over one table's row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    /// `col=value`, or `col=any(v1,v2)` (several values).
    Eq(String, Vec<String>),
    /// `col::null::`.
    Null(String),
    /// `col::lt::v`, `::leq::`, `::gt::`, `::geq::`.
    Cmp(String, CmpOp, String),
    /// `!(…)`.
    Not(Box<Filter>),
    /// `a&b`.
    And(Vec<Filter>),
    /// `a;b`.
    Or(Vec<Filter>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Lt,
    Leq,
    Gt,
    Geq,
}

/// One output column of an `/attribute` or `/attributegroup` projection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Projection {
    /// `alias:=col` or `col`.
    Column { alias: String, column: String },
    /// `*`: every column.
    All,
    /// `alias:=cnt(*)` / `cnt(col)` / `cnt_d(col)`.
    Count {
        alias: String,
        column: Option<String>,
        distinct: bool,
    },
}

/// A parsed data path: one table, its filters and modifiers.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct DataPath {
    /// `schema:table` or a bare table name, as written (decoded).
    pub table: String,
    /// Conjunction of every filter element.
    pub filters: Vec<Filter>,
    /// `@sort(...)`: `(column, descending)`.
    pub sort: Vec<(String, bool)>,
    /// `@after(...)` literals; `None` is `::null::`.
    pub after: Option<Vec<Option<String>>>,
    /// The trailing projection element for `/attribute`, `/attributegroup`, `/aggregate`:
    /// group keys (before `;`) and the rest.
    pub projection: Option<(Vec<Projection>, Vec<Projection>)>,
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// Splits `text` at `sep` outside parentheses.
fn split_top(text: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if c == sep && depth == 0 => {
                out.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// Strips the `A:` qualifier from a column reference.
fn column_name(text: &str) -> String {
    let decoded = decode(text);
    match decoded.rsplit_once(':') {
        Some((_, col)) => col.to_string(),
        None => decoded,
    }
}

/// Parses a filter element such as `(URL=x);(Checksum=y)` or `RID=any(1-A,1-B)`.
pub(crate) fn parse_filter(text: &str) -> Result<Filter, String> {
    let ors = split_top(text, ';');
    if ors.len() > 1 {
        return ors
            .into_iter()
            .map(parse_filter)
            .collect::<Result<Vec<_>, _>>()
            .map(Filter::Or);
    }
    let ands = split_top(text, '&');
    if ands.len() > 1 {
        return ands
            .into_iter()
            .map(parse_filter)
            .collect::<Result<Vec<_>, _>>()
            .map(Filter::And);
    }
    if let Some(rest) = text.strip_prefix('!') {
        return Ok(Filter::Not(Box::new(parse_filter(rest)?)));
    }
    if text.starts_with('(') && text.ends_with(')') {
        // Only strip when the parentheses enclose the whole element.
        let inner = &text[1..text.len() - 1];
        let mut depth = 0i32;
        let mut encloses = true;
        for c in inner.chars() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth < 0 {
                        encloses = false;
                        break;
                    }
                }
                _ => {}
            }
        }
        if encloses {
            return parse_filter(inner);
        }
    }
    if let Some(col) = text.strip_suffix("::null::") {
        return Ok(Filter::Null(column_name(col)));
    }
    for (token, op) in [
        ("::lt::", CmpOp::Lt),
        ("::leq::", CmpOp::Leq),
        ("::gt::", CmpOp::Gt),
        ("::geq::", CmpOp::Geq),
    ] {
        if let Some((col, value)) = text.split_once(token) {
            return Ok(Filter::Cmp(column_name(col), op, decode(value)));
        }
    }
    if let Some((col, value)) = text.split_once('=') {
        if let Some(list) = value.strip_prefix("any(").and_then(|v| v.strip_suffix(')')) {
            let values = list.split(',').map(decode).collect();
            return Ok(Filter::Eq(column_name(col), values));
        }
        return Ok(Filter::Eq(column_name(col), vec![decode(value)]));
    }
    Err(format!("unsupported filter {text:?}"))
}

fn parse_projection_list(text: &str) -> Result<Vec<Projection>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|item| {
            let (alias, expr) = match item.split_once(":=") {
                Some((a, e)) => (Some(decode(a)), e),
                None => (None, item),
            };
            if expr == "*" {
                return Ok(Projection::All);
            }
            for (func, distinct) in [("cnt_d(", true), ("cnt(", false)] {
                if let Some(arg) = expr.strip_prefix(func).and_then(|e| e.strip_suffix(')')) {
                    let column = (arg != "*").then(|| column_name(arg));
                    return Ok(Projection::Count {
                        alias: alias.unwrap_or_else(|| "cnt".to_string()),
                        column,
                        distinct,
                    });
                }
            }
            if expr.contains('(') {
                return Err(format!("unsupported projection {item:?}"));
            }
            let column = column_name(expr);
            Ok(Projection::Column {
                alias: alias.unwrap_or_else(|| column.clone()),
                column,
            })
        })
        .collect()
}

/// Splits trailing `@sort(...)@after(...)` modifiers off the last path element.
fn split_modifiers(last: &str, path: &mut DataPath) -> Result<String, String> {
    let Some(at) = last.find('@') else {
        return Ok(last.to_string());
    };
    let (head, mut mods) = last.split_at(at);
    while !mods.is_empty() {
        let (name, rest) = if let Some(rest) = mods.strip_prefix("@sort(") {
            ("sort", rest)
        } else if let Some(rest) = mods.strip_prefix("@after(") {
            ("after", rest)
        } else if let Some(rest) = mods.strip_prefix("@before(") {
            ("before", rest)
        } else {
            return Err(format!("unsupported modifier in {last:?}"));
        };
        let close = rest
            .find(')')
            .ok_or_else(|| format!("unclosed modifier in {last:?}"))?;
        let args = &rest[..close];
        mods = &rest[close + 1..];
        match name {
            "sort" => {
                path.sort = args
                    .split(',')
                    .map(|a| match a.strip_suffix("::desc::") {
                        Some(col) => (column_name(col), true),
                        None => (column_name(a), false),
                    })
                    .collect();
            }
            "after" => {
                path.after = Some(
                    args.split(',')
                        .map(|a| (a != "::null::").then(|| decode(a)))
                        .collect(),
                );
            }
            _ => return Err("@before is not supported by the test catalog".to_string()),
        }
    }
    Ok(head.to_string())
}

/// Parses the part of a data URL after `/entity/`, `/attribute/`, … (still percent-encoded).
/// `with_projection` says whether the last element is a projection.
pub(crate) fn parse_data_path(text: &str, with_projection: bool) -> Result<DataPath, String> {
    let mut path = DataPath::default();
    let mut elements: Vec<&str> = text.split('/').filter(|e| !e.is_empty()).collect();
    if elements.is_empty() {
        return Err("empty data path".to_string());
    }
    let last = elements.pop().unwrap_or_default();
    let last = split_modifiers(last, &mut path)?;
    if with_projection {
        let (keys, rest) = match last.split_once(';') {
            Some((k, r)) => (parse_projection_list(k)?, parse_projection_list(r)?),
            None => (parse_projection_list(&last)?, Vec::new()),
        };
        path.projection = Some((keys, rest));
    } else {
        elements.push(&last);
    }
    let Some((first, filters)) = elements.split_first() else {
        return Err("data path has no table".to_string());
    };
    let table = match first.split_once(":=") {
        Some((_, t)) => t,
        None => first,
    };
    path.table = decode(table);
    for element in filters {
        if is_table_element(element) {
            return Err(format!(
                "path joins ({element:?}) are not supported by the test catalog"
            ));
        }
        path.filters.push(parse_filter(element)?);
    }
    Ok(path)
}

/// A path element is a table (join) rather than a filter when it has no operator.
fn is_table_element(element: &str) -> bool {
    !(element.contains('=') || element.contains("::") || element.starts_with('('))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aliased_root_with_disjunction_and_projection() {
        let p = parse_data_path(
            "Workflow:=deriva-ml:Workflow/(URL=x%2Fy);(Checksum=abc)/RID",
            true,
        )
        .unwrap();
        assert_eq!(p.table, "deriva-ml:Workflow");
        assert_eq!(
            p.filters,
            vec![Filter::Or(vec![
                Filter::Eq("URL".into(), vec!["x/y".into()]),
                Filter::Eq("Checksum".into(), vec!["abc".into()])
            ])]
        );
        assert_eq!(
            p.projection.unwrap().0,
            vec![Projection::Column {
                alias: "RID".into(),
                column: "RID".into()
            }]
        );
    }

    #[test]
    fn parses_sort_after_any_and_null_tests() {
        let p = parse_data_path(
            "demo:Image/RID=any(1-I001,1-I002)/!(URL::null::)@sort(RID::desc::)@after(1-I002)",
            false,
        )
        .unwrap();
        assert_eq!(p.table, "demo:Image");
        assert_eq!(
            p.filters[0],
            Filter::Eq("RID".into(), vec!["1-I001".into(), "1-I002".into()])
        );
        assert_eq!(
            p.filters[1],
            Filter::Not(Box::new(Filter::Null("URL".into())))
        );
        assert_eq!(p.sort, vec![("RID".to_string(), true)]);
        assert_eq!(p.after, Some(vec![Some("1-I002".to_string())]));
    }

    #[test]
    fn parses_group_projection_with_count() {
        let p = parse_data_path(
            "F:=demo:Execution_Image_Glaucoma/Execution=1-EX42/Image;n:=cnt(*)",
            true,
        )
        .unwrap();
        let (keys, aggs) = p.projection.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(
            aggs,
            vec![Projection::Count {
                alias: "n".into(),
                column: None,
                distinct: false
            }]
        );
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic_on_arbitrary_paths(text in "\\PC{0,60}") {
            let _ = parse_filter(&text);
            let _ = parse_data_path(&text, true);
            let _ = parse_data_path(&text, false);
        }

        #[test]
        fn an_encoded_literal_round_trips_through_an_equality_filter(value in "\\PC{1,30}") {
            let encoded = percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC).to_string();
            let f = parse_filter(&format!("Name={encoded}")).unwrap();
            proptest::prop_assert_eq!(f, Filter::Eq("Name".into(), vec![value]));
        }
    }

    #[test]
    fn rejects_path_joins() {
        let err =
            parse_data_path("deriva-ml:Dataset/RID=1-D000/demo:Dataset_Image", false).unwrap_err();
        assert!(err.contains("path joins"), "{err}");
    }
}
