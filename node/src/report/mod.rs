//! The stocktake as files and pages: what a node feeds the pure computation
//! ([`poa_protocol::stocktake`]), the renderings of its result (Markdown, JSON, CSV, the SDG
//! 16.4.2 CSV, and a self-contained HTML page with inline SVG charts), and `verify`.
//!
//! Every rendering of a stocktake is a function of the [`Stocktake`] alone, so a report
//! recomputed from the same documents at the same heads renders to the same bytes. The JSON
//! rendering is the protocol's canonical [`Stocktake::to_json`]; each other format has its
//! module.

use std::str::FromStr;

use poa_protocol::model::ModelError;
use poa_protocol::stocktake::Stocktake;

use crate::node::NodeError;

mod csv;
mod html;
mod input;
mod markdown;
mod sdg_csv;
mod verify;

pub use csv::neutralise;
pub use html::{chart_pooled, stocktake_body};
pub use input::{compute, default_cycle, input};
pub use verify::{Stamp, Verdict, verify};

/// The formats `stocktake --format` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Markdown.
    Md,
    /// The canonical JSON.
    Json,
    /// One row per target, for spreadsheets.
    Csv,
    /// SDG 16.4.2 in the SDG data format's columns.
    SdgCsv,
    /// A self-contained page with charts.
    Html,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "md" | "markdown" => Ok(Format::Md),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "sdg-csv" | "sdg" => Ok(Format::SdgCsv),
            "html" => Ok(Format::Html),
            other => Err(format!(
                "unknown format '{other}': use md, json, csv, sdg-csv or html"
            )),
        }
    }
}

/// Errors of the stocktake.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A node operation failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The report cites a document or change this node does not hold.
    #[error(
        "cannot verify: this node does not hold {0} as the report cites it; sync with the node that made the report, then verify again"
    )]
    Missing(String),
    /// The file is not a report this version reads.
    #[error("{0}")]
    NotAReport(String),
    /// No cycle given and none found.
    #[error("this node holds no targets yet: give --cycle (BMS9, BMS10...)")]
    NoCycle,
    /// A bad value.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Renders a stocktake.
pub fn render(st: &Stocktake, format: Format) -> String {
    match format {
        Format::Json => st.to_json(),
        Format::Md => markdown::markdown(st),
        Format::Csv => csv::csv(st),
        Format::SdgCsv => sdg_csv::sdg_csv(st),
        Format::Html => html::html_report(st),
    }
}
