//! The stocktake's SDG 16.4.2 figures in the columns of the SDG data format.

use poa_protocol::stocktake::{SDG_SERIES, Stocktake};

use super::csv::csv_row;

/// One row per State and year with a 16.4.2 figure.
pub(super) fn sdg_csv(st: &Stocktake) -> String {
    let mut o = String::new();
    csv_row(
        &mut o,
        &[
            "Indicator",
            "SeriesCode",
            "GeoAreaCode",
            "GeoAreaName",
            "TimePeriod",
            "Value",
            "Units",
            "Source",
        ]
        .map(String::from),
    );
    for r in &st.sdg_16_4_2 {
        csv_row(
            &mut o,
            &[
                "16.4.2".into(),
                SDG_SERIES.into(),
                r.m49.map(|m| format!("{m:03}")).unwrap_or_default(),
                r.state.clone(),
                r.year.to_string(),
                r.value.to_string(),
                "PERCENT".into(),
                format!("state/{} target {}", r.state, r.target),
            ],
        );
    }
    o
}
