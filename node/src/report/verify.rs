//! Checking a report: the stamp a report carries (what it was computed from), and `verify`,
//! which recomputes the report from this node's copies of the cited documents and compares.

use poa_protocol::Date;
use poa_protocol::model::Cycle;
use poa_protocol::stocktake::{Cited, FORMAT, Stocktake, stocktake};
use serde::{Deserialize, Serialize};

use super::{Format, ReportError, input, render};
use crate::node::Node;

const STAMP_OPEN: &str = "<!-- poa-stocktake ";
const STAMP_CLOSE: &str = " -->";

/// What a report says it was computed from: enough to compute it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// [`FORMAT`].
    pub format: String,
    /// The cycle.
    pub cycle: String,
    /// The date statuses were judged at.
    pub as_of: Date,
    /// The documents and heads read.
    pub sources: Vec<Cited>,
}

impl Stamp {
    fn of(st: &Stocktake) -> Stamp {
        Stamp {
            format: st.format.clone(),
            cycle: st.cycle.clone(),
            as_of: st.as_of,
            sources: st.sources.clone(),
        }
    }

    fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The stamp of `st` as the comment line the Markdown and HTML reports carry.
    pub(super) fn comment(st: &Stocktake) -> String {
        format!("{STAMP_OPEN}{}{STAMP_CLOSE}\n", Stamp::of(st).text())
    }
}

/// What `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The report is what this node computes from the documents it cites.
    Matches {
        /// Documents read.
        documents: usize,
    },
    /// It is not: the first line that differs.
    Differs {
        /// Line number, from 1.
        line: usize,
        /// What the report says.
        report: String,
        /// What this node computes.
        computed: String,
    },
}

/// Recomputes a report (JSON, Markdown or HTML) from this node's copies of the documents it
/// cites, at the heads it cites, and compares the two byte for byte.
pub fn verify(node: &Node, text: &str) -> Result<Verdict, ReportError> {
    let (format, stamp) = if text.trim_start().starts_with('{') {
        let st: Stocktake = serde_json::from_str(text)
            .map_err(|e| ReportError::NotAReport(format!("not a stocktake JSON report: {e}")))?;
        (Format::Json, Stamp::of(&st))
    } else {
        let format = if text.trim_start().starts_with("<!DOCTYPE html>") {
            Format::Html
        } else {
            Format::Md
        };
        let start = text.rfind(STAMP_OPEN).ok_or_else(|| {
            ReportError::NotAReport(
                "no stocktake stamp found: verify reads the JSON, Markdown or HTML reports `poa-node stocktake` writes".into(),
            )
        })? + STAMP_OPEN.len();
        let end = text[start..]
            .find(STAMP_CLOSE)
            .ok_or_else(|| ReportError::NotAReport("the stocktake stamp is cut short".into()))?;
        let stamp: Stamp = serde_json::from_str(&text[start..start + end])
            .map_err(|e| ReportError::NotAReport(format!("the stocktake stamp is damaged: {e}")))?;
        (format, stamp)
    };
    if stamp.format != FORMAT {
        return Err(ReportError::NotAReport(format!(
            "the report is in format {}, this node reads {FORMAT}",
            stamp.format
        )));
    }
    let cycle: Cycle = stamp.cycle.parse()?;
    let input = input(node, Some(&stamp.sources))?;
    let again = render(&stocktake(&input, cycle, stamp.as_of), format);
    if again == text {
        return Ok(Verdict::Matches {
            documents: stamp.sources.len(),
        });
    }
    let (mut a, mut b) = (text.lines(), again.lines());
    let mut line = 1;
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => line += 1,
            (x, y) => {
                return Ok(Verdict::Differs {
                    line,
                    report: x.unwrap_or("(end of file)").to_string(),
                    computed: y.unwrap_or("(end of file)").to_string(),
                });
            }
        }
    }
}
