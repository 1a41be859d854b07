//! XEP-0004 data forms as the admin commands use them: forms to fill, single
//! results, result tables (`<reported/>` and `<item/>`s) and reading what a client
//! submitted.
//!
//! Fields, forms and their parsing are xmpp-parsers' `data_forms` types. Its
//! `DataForm` has no `<reported/>` or `<item/>`, so a table is that form with
//! those two appended by hand, made of its `Field`s.
//!
//! Tables are the one form whose size grows with the service's state: rows are
//! added while they fit a byte budget (see [`Table::into_element`]).

use std::collections::BTreeMap;

use minidom::Element;
use xmpp_parsers::data_forms::{DataForm, DataFormType, Field, FieldType, Option_};

use super::limits::size_within;

/// XEP-0004 namespace.
pub const NS_DATA_FORMS: &str = "jabber:x:data";

/// A field to fill: `var`, its label, its type and an optional preset value.
pub fn input(var: &str, label: &str, type_: FieldType, value: Option<&str>) -> Field {
    let mut f = Field::new(var, type_);
    f.label = Some(label.to_string());
    f.values = value.map(str::to_string).into_iter().collect();
    f
}

/// `field` marked required.
pub fn required(mut field: Field) -> Field {
    field.required = true;
    field
}

/// `field` with a description (clients show it as help text).
pub fn described(mut field: Field, desc: &str) -> Field {
    field.desc = Some(desc.to_string());
    field
}

/// A `list-single` field offering `options` as `(value, label)`.
pub fn choice(var: &str, label: &str, options: Vec<(String, String)>) -> Field {
    let mut f = input(var, label, FieldType::ListSingle, None);
    f.options = options
        .into_iter()
        .map(|(value, label)| Option_ {
            label: Some(label),
            value,
        })
        .collect();
    f
}

/// A read-only `text-single` field of a result.
pub fn shown(var: &str, label: &str, value: impl Into<String>) -> Field {
    input(var, label, FieldType::TextSingle, Some(&value.into()))
}

/// A form of `type_` with a title, instructions and fields.
pub fn form(
    type_: DataFormType,
    title: &str,
    instructions: Option<&str>,
    fields: Vec<Field>,
) -> Element {
    Element::from(DataForm {
        type_,
        title: Some(title.to_string()),
        instructions: instructions.map(str::to_string),
        fields,
    })
}

/// One column of a [`Table`]: `var`, label, and whether a cell holds several
/// values (one line each).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The field's `var`.
    pub var: &'static str,
    /// What clients show as the heading.
    pub label: &'static str,
    /// `text-multi` rather than `text-single`.
    pub multi: bool,
}

/// A result form with one row per item (XEP-0004 "Multiple Items in Form Results").
#[derive(Debug)]
pub struct Table {
    title: String,
    columns: Vec<Column>,
    rows: Vec<Element>,
}

impl Table {
    /// An empty table titled `title` with `columns`.
    pub fn new(title: &str, columns: &[Column]) -> Table {
        Table {
            title: title.to_string(),
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// One row as an `<item/>`: one list of values per column, in order.
    pub fn row(&self, cells: Vec<Vec<String>>) -> Element {
        let mut item = Element::builder("item", NS_DATA_FORMS);
        for (column, values) in self.columns.iter().zip(cells) {
            let mut f = Field::new(column.var, FieldType::TextSingle);
            f.values = values;
            item = item.append(Element::from(f));
        }
        item.build()
    }

    /// Adds `row` (from [`Table::row`]) if it fits in `room` bytes; returns what it
    /// took, or `None` (and leaves the table as it was).
    pub fn push_within(&mut self, row: Element, room: usize) -> Option<usize> {
        let size = size_within(&row, room)?;
        self.rows.push(row);
        Some(size)
    }

    /// Rows added so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The `<x type='result'/>` with `instructions`, the `<reported/>` columns and
    /// every row added.
    pub fn into_element(self, instructions: Option<&str>) -> Element {
        let mut x = form(DataFormType::Result_, &self.title, instructions, Vec::new());
        let mut reported = Element::builder("reported", NS_DATA_FORMS);
        for c in &self.columns {
            let type_ = if c.multi {
                FieldType::TextMulti
            } else {
                FieldType::TextSingle
            };
            let mut f = Field::new(c.var, type_);
            f.label = Some(c.label.to_string());
            reported = reported.append(Element::from(f));
        }
        x.append_child(reported.build());
        for row in self.rows {
            x.append_child(row);
        }
        x
    }
}

/// What a client submitted: each field's values by `var`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Submitted {
    fields: BTreeMap<String, Vec<String>>,
}

impl Submitted {
    /// Reads `<x type='submit'/>`; XEP-0050 has a `cancel` form count as a submit.
    /// `Err` names what is wrong, for a `bad-payload` error.
    pub fn parse(x: &Element) -> Result<Submitted, String> {
        let form =
            DataForm::try_from(x.clone()).map_err(|e| format!("unreadable data form: {e}"))?;
        if !matches!(form.type_, DataFormType::Submit | DataFormType::Cancel) {
            return Err("the data form must be of type 'submit'".into());
        }
        let fields = form
            .fields
            .into_iter()
            .filter_map(|f| Some((f.var?, f.values)))
            .collect();
        Ok(Submitted { fields })
    }

    /// A submission made of `(var, value)` pairs (tests and one-shot callers).
    pub fn of(pairs: &[(&str, &str)]) -> Submitted {
        Submitted {
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect(),
        }
    }

    /// The first value of `var`, trimmed; `None` when absent or blank.
    pub fn value(&self, var: &str) -> Option<&str> {
        self.fields
            .get(var)?
            .first()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first value of `var`, or an error naming the field.
    pub fn need(&self, var: &str) -> Result<&str, String> {
        self.value(var)
            .ok_or_else(|| format!("the form's field '{var}' is required"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_carries_its_fields_and_parses_back() {
        let x = form(
            DataFormType::Form,
            "Drop a peer",
            Some("Pick one"),
            vec![
                required(choice(
                    "stream",
                    "Stream",
                    vec![("3".into(), "3: alice".into())],
                )),
                input("jid", "Peer", FieldType::JidSingle, None),
            ],
        );
        let text = String::from(&x);
        assert!(text.contains("<title>Drop a peer</title>"), "{text}");
        assert!(text.contains("var='stream'"), "{text}");
        assert!(text.contains("<required/>"), "{text}");
        let back = DataForm::try_from(x).unwrap();
        assert_eq!(back.fields.len(), 2);
        assert_eq!(back.fields[0].options[0].value, "3");
    }

    #[test]
    fn a_table_lists_its_columns_and_the_rows_that_fit() {
        let cols = [
            Column {
                var: "stream",
                label: "Stream",
                multi: false,
            },
            Column {
                var: "peers",
                label: "Peers",
                multi: true,
            },
        ];
        let mut t = Table::new("Streams", &cols);
        let row = t.row(vec![vec!["1".into()], vec!["a".into(), "b".into()]]);
        let size = t.push_within(row.clone(), 10_000).unwrap();
        assert!(t.push_within(row, size - 1).is_none(), "one byte short");
        assert_eq!(t.len(), 1);
        let x = t.into_element(Some("1 stream"));
        let reported = x.get_child("reported", NS_DATA_FORMS).unwrap();
        assert_eq!(reported.children().count(), 2);
        let items: Vec<_> = x.children().filter(|c| c.name() == "item").collect();
        assert_eq!(items.len(), 1);
        let values: Vec<String> = items[0]
            .children()
            .nth(1)
            .unwrap()
            .children()
            .map(|v| v.text())
            .collect();
        assert_eq!(values, ["a", "b"]);
    }

    #[test]
    fn submissions_are_read_by_var_and_other_types_refused() {
        let x: Element = "<x xmlns='jabber:x:data' type='submit'>\
            <field var='stream'><value> 7 </value></field>\
            <field var='reason'><value></value></field></x>"
            .parse()
            .unwrap();
        let s = Submitted::parse(&x).unwrap();
        assert_eq!(s.value("stream"), Some("7"));
        assert_eq!(s.value("reason"), None, "blank is absent");
        assert!(s.need("jid").unwrap_err().contains("'jid'"));
        let form: Element = "<x xmlns='jabber:x:data' type='form'/>".parse().unwrap();
        assert!(Submitted::parse(&form).is_err());
        let junk: Element = "<x xmlns='jabber:x:data'/>".parse().unwrap();
        assert!(Submitted::parse(&junk).unwrap_err().contains("unreadable"));
    }
}
