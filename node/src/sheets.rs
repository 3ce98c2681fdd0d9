//! Spreadsheets, because that is how desks work: a documented blank template (one sheet per
//! record kind), the State's draft exported in the same shape, and an import that reads it all
//! or nothing, through the same checks as every other write, with errors that name the sheet,
//! the row and the column.
//!
//! Two formats: an `.xlsx` workbook (sheets `Targets`, `Progress`, `Requests`, and `About`,
//! which documents every column), or a folder of CSV files (`targets.csv`, `progress.csv`,
//! `requests.csv`, and `README.txt`). Lists in a cell are separated by `;`. Dates are
//! `YYYY-MM-DD` (a date cell a spreadsheet program made is read as its date).

use std::fmt;
use std::path::Path;

use poa_protocol::checks::{Finding, Severity, Stage, check_need, check_progress, check_target};
use poa_protocol::doc::{DocId, StateData, target_key};
use poa_protocol::model::{Evidence, Indicator, IndicatorKind, Need, Priority, Progress, Target};
use poa_protocol::{Date, StateCode};
use serde::Serialize;

use crate::node::{Node, NodeError};

/// A sheet of the workbook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Sheet {
    /// Targets, one row per target (its current version).
    Targets,
    /// Progress reports, one row per report.
    Progress,
    /// Assistance requests, one row per request.
    Requests,
}

impl Sheet {
    /// Every sheet, in workbook order.
    pub const ALL: [Sheet; 3] = [Sheet::Targets, Sheet::Progress, Sheet::Requests];

    /// Its name in a workbook.
    pub fn name(&self) -> &'static str {
        match self {
            Sheet::Targets => "Targets",
            Sheet::Progress => "Progress",
            Sheet::Requests => "Requests",
        }
    }

    /// Its file in a CSV folder.
    pub fn file(&self) -> &'static str {
        match self {
            Sheet::Targets => "targets.csv",
            Sheet::Progress => "progress.csv",
            Sheet::Requests => "requests.csv",
        }
    }

    /// Its columns: name, whether required, what goes there.
    pub fn columns(&self) -> &'static [(&'static str, bool, &'static str)] {
        match self {
            Sheet::Targets => &[
                ("id", true, "the State's own id for the target: T1"),
                ("cycle", true, "BMS7, BMS8, RevCon4, BMS9, BMS10 or RevCon5"),
                (
                    "area",
                    true,
                    "commitment area, as `poa-node reference areas` lists them: marking",
                ),
                ("title", true, "one line, at most 200 characters"),
                ("description", false, "longer text"),
                (
                    "kind",
                    false,
                    "quantitative (the default), milestone or yes-no",
                ),
                ("indicator", true, "what is measured, in words"),
                (
                    "unit",
                    false,
                    "unit of a quantitative indicator: percent, weapons, depots",
                ),
                ("direction", false, "increase, decrease or reach"),
                ("baseline", false, "a number"),
                ("baseline_year", false, "a year: 2023"),
                ("baseline_source", false, "where the baseline comes from"),
                ("value", false, "the target value, a number"),
                ("deadline", true, "YYYY-MM-DD"),
                (
                    "mosaic",
                    false,
                    "MOSAIC modules cited, separated by ;: 05.30; 05.31",
                ),
                (
                    "refs",
                    false,
                    "PoA/ITI references, separated by ;: ITI 8; PoA II.4",
                ),
                ("sdg", false, "SDG target or indicator: 16.4.2"),
                (
                    "conditional_on",
                    false,
                    "requests the target depends on, separated by ;: R1",
                ),
            ],
            Sheet::Progress => &[
                ("target", true, "the target reported on: T1"),
                ("as_of", true, "the date the figures describe, YYYY-MM-DD"),
                ("value", false, "the observed value, a number"),
                (
                    "assessment",
                    false,
                    "on-track, off-track, achieved, not-started or no-data",
                ),
                ("note", false, "narrative"),
                ("challenges", false, "challenges met"),
                (
                    "evidence",
                    false,
                    "where the evidence is (a link); needs sha256",
                ),
                (
                    "sha256",
                    false,
                    "SHA-256 of the evidence file (64 hexadecimal characters)",
                ),
                ("source", false, "where the figures come from"),
                (
                    "assistance_received",
                    false,
                    "assistance received toward the target",
                ),
            ],
            Sheet::Requests => &[
                ("id", true, "the State's own id for the request: R1"),
                ("title", true, "what is asked for, one line"),
                ("targets", false, "targets it serves, separated by ;: T2"),
                ("area", true, "commitment area"),
                ("mosaic", false, "MOSAIC modules concerned, separated by ;"),
                ("kind", true, "financial, technical, equipment or training"),
                ("cost", false, "estimated cost, a number"),
                ("currency", false, "ISO 4217 code of the cost: USD"),
                ("from", false, "needed from, YYYY-MM-DD"),
                ("until", false, "needed until, YYYY-MM-DD"),
                ("priority", false, "high, medium (the default) or low"),
            ],
        }
    }

    fn header(&self) -> Vec<String> {
        self.columns()
            .iter()
            .map(|(n, _, _)| n.to_string())
            .collect()
    }

    /// Columns whose cells are numbers.
    fn numeric(&self, column: &str) -> bool {
        matches!(
            (self, column),
            (Sheet::Targets, "baseline" | "baseline_year" | "value")
                | (Sheet::Progress, "value")
                | (Sheet::Requests, "cost")
        )
    }
}

/// The rows of one sheet: cells as text, by column name, in the sheet's column order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rows(pub Vec<Vec<String>>);

/// A workbook's three sheets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Book {
    /// Targets.
    pub targets: Rows,
    /// Progress reports.
    pub progress: Rows,
    /// Requests.
    pub requests: Rows,
}

impl Book {
    fn sheet(&self, s: Sheet) -> &Rows {
        match s {
            Sheet::Targets => &self.targets,
            Sheet::Progress => &self.progress,
            Sheet::Requests => &self.requests,
        }
    }

    fn sheet_mut(&mut self, s: Sheet) -> &mut Rows {
        match s {
            Sheet::Targets => &mut self.targets,
            Sheet::Progress => &mut self.progress,
            Sheet::Requests => &mut self.requests,
        }
    }
}

/// One thing wrong with one cell (or row) of a sheet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CellError {
    /// The sheet.
    pub sheet: Sheet,
    /// The row as the spreadsheet numbers it (the header is row 1); 0 for the sheet itself.
    pub row: usize,
    /// The column, if one is to blame.
    pub column: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sheet {}", self.sheet.name())?;
        if self.row > 0 {
            write!(f, ", row {}", self.row)?;
        }
        if let Some(c) = &self.column {
            write!(f, ", {c}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a spreadsheet was not imported. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    /// The file or folder cannot be read as a workbook.
    #[error("{0}")]
    Unreadable(String),
    /// Cells that are wrong; the first ten are in the message.
    #[error("nothing imported: {}", cells_line(.0))]
    Cells(Vec<CellError>),
    /// A node operation failed.
    #[error(transparent)]
    Node(#[from] NodeError),
}

fn cells_line(errors: &[CellError]) -> String {
    let mut parts: Vec<String> = errors.iter().take(10).map(CellError::to_string).collect();
    if errors.len() > 10 {
        parts.push(format!("and {} more", errors.len() - 10));
    }
    parts.join("; ")
}

/// The format of a template or an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One `.xlsx` workbook.
    Xlsx,
    /// A folder of CSV files.
    Csv,
}

/// The most rows one sheet may have: a national submission is tens of rows, not millions.
pub const MAX_ROWS: usize = 10_000;
/// The longest cell, in characters.
const MAX_CELL: usize = 20_000;

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Writes `book` (an empty one is the template) to `path`: a workbook, or a folder of CSV files
/// (created if missing). The files appear whole or not at all.
pub fn write(book: &Book, format: Format, path: &Path) -> Result<(), SheetError> {
    match format {
        Format::Xlsx => {
            let bytes = xlsx_bytes(book)
                .map_err(|e| SheetError::Unreadable(format!("cannot make the workbook: {e}")))?;
            write_file(path, &bytes)
        }
        Format::Csv => {
            std::fs::create_dir_all(path).map_err(|e| {
                SheetError::Unreadable(format!("cannot create {}: {e}", path.display()))
            })?;
            write_file(&path.join("README.txt"), about_text().as_bytes())?;
            for s in Sheet::ALL {
                write_file(&path.join(s.file()), csv_text(s, book.sheet(s)).as_bytes())?;
            }
            Ok(())
        }
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SheetError> {
    crate::cli::write_bytes_atomically(path, bytes)
        .map_err(|e| SheetError::Unreadable(format!("{e:#}")))
}

/// What every column means, for the `About` sheet and `README.txt`.
pub fn about_text() -> String {
    let mut o = String::from(
        "poa-node submission workbook\n\n\
One sheet per kind of record; the first row names the columns (any order; the names below).\n\
Required columns are marked *. Lists in a cell are separated by ;. Dates are YYYY-MM-DD.\n\
Import with `poa-node submission import FILE`: every row is checked, and if any row is wrong\n\
nothing is written and each error names its sheet, row and column.\n",
    );
    for s in Sheet::ALL {
        o.push_str(&format!("\n{} ({})\n", s.name(), s.file()));
        for (name, required, what) in s.columns() {
            let mark = if *required { "*" } else { " " };
            o.push_str(&format!("  {mark} {name}: {what}\n"));
        }
    }
    o
}

fn csv_text(s: Sheet, rows: &Rows) -> String {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    let header = s.header();
    let _ = w.write_record(&header);
    for r in &rows.0 {
        let cells: Vec<String> = r
            .iter()
            .zip(&header)
            .map(|(c, h)| {
                if s.numeric(h) {
                    c.clone()
                } else {
                    crate::report::neutralise(c)
                }
            })
            .collect();
        let _ = w.write_record(&cells);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn xlsx_bytes(book: &Book) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format as XFormat, Workbook};
    let mut wb = Workbook::new();
    let bold = XFormat::new().set_bold();
    for s in Sheet::ALL {
        let ws = wb.add_worksheet();
        ws.set_name(s.name())?;
        for (c, (name, _, _)) in s.columns().iter().enumerate() {
            let c = c as u16;
            ws.write_string_with_format(0, c, *name, &bold)?;
            ws.set_column_width(c, 16)?;
        }
        ws.set_freeze_panes(1, 0)?;
        for (r, row) in book.sheet(s).0.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, (cell, (name, _, _))) in row.iter().zip(s.columns()).enumerate() {
                let c = c as u16;
                if cell.is_empty() {
                    continue;
                }
                match cell.parse::<f64>() {
                    Ok(n) if s.numeric(name) => ws.write_number(r, c, n)?,
                    // Text stays text: a spreadsheet never runs it as a formula.
                    _ => ws.write_string(r, c, cell.as_str())?,
                };
            }
        }
    }
    let about = wb.add_worksheet();
    about.set_name("About")?;
    about.set_column_width(0, 110)?;
    for (r, line) in about_text().lines().enumerate() {
        about.write_string(r as u32, 0, line)?;
    }
    wb.save_to_buffer()
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// Reads a workbook (`.xlsx`, `.xls`, `.ods`) or a folder of CSV files into its sheets, each row
/// in the sheet's column order. Unknown columns, missing required columns, too many rows or an
/// over-long cell are errors here already.
pub fn read(path: &Path) -> Result<Book, SheetError> {
    let mut raw: Vec<(Sheet, Vec<Vec<String>>)> = Vec::new();
    if path.is_dir() {
        let mut any = false;
        for s in Sheet::ALL {
            let file = path.join(s.file());
            if !file.exists() {
                continue;
            }
            any = true;
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_path(&file)
                .map_err(|e| {
                    SheetError::Unreadable(format!("cannot read {}: {e}", file.display()))
                })?;
            let mut rows = Vec::new();
            for rec in r.records() {
                let rec = rec.map_err(|e| {
                    SheetError::Unreadable(format!("{} is not CSV: {e}", file.display()))
                })?;
                if rows.len() > MAX_ROWS {
                    break;
                }
                rows.push(rec.iter().map(unneutralise).collect());
            }
            raw.push((s, rows));
        }
        if !any {
            return Err(SheetError::Unreadable(format!(
                "{} holds none of targets.csv, progress.csv, requests.csv: write a template with `poa-node submission template --format csv --out {}`",
                path.display(),
                path.display()
            )));
        }
    } else {
        use calamine::Reader;
        let mut wb = calamine::open_workbook_auto(path).map_err(|e| {
            SheetError::Unreadable(format!(
                "cannot read {} as a workbook ({e}): give an .xlsx, .xls or .ods file, or a folder of CSV files",
                path.display()
            ))
        })?;
        let names = wb.sheet_names();
        for s in Sheet::ALL {
            // `Targets`, or `Targets.csv` as a program merging CSV files names it.
            let Some(name) = names.iter().find(|n| {
                let stem = n.rsplit_once('.').map_or(n.as_str(), |(a, _)| a);
                stem.trim().eq_ignore_ascii_case(s.name())
            }) else {
                continue;
            };
            let range = wb
                .worksheet_range(name)
                .map_err(|e| SheetError::Unreadable(format!("cannot read sheet {name}: {e}")))?;
            let rows: Vec<Vec<String>> = range
                .rows()
                .take(MAX_ROWS + 2)
                .map(|r| r.iter().map(cell_text).collect())
                .collect();
            raw.push((s, rows));
        }
        if raw.is_empty() {
            return Err(SheetError::Unreadable(format!(
                "{} has no sheet named Targets, Progress or Requests: start from `poa-node submission template`",
                path.display()
            )));
        }
    }
    let mut book = Book::default();
    let mut errors = Vec::new();
    for (s, rows) in raw {
        match columns_of(s, rows) {
            Ok(r) => *book.sheet_mut(s) = r,
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(book)
    } else {
        Err(SheetError::Cells(errors))
    }
}

/// The text of a workbook cell, as it would be typed.
fn cell_text(c: &calamine::Data) -> String {
    use calamine::Data;
    match c {
        Data::Empty => String::new(),
        Data::String(s) => s.trim().to_string(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number_text(*f),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => {
            // Days since 1899-12-30 (the 1900 date system every current program writes).
            let days = d.as_f64().floor() as i64;
            Date::from_unix_seconds((days - 25_569) * 86_400).to_string()
        }
        Data::DateTimeIso(s) => s.get(..10).unwrap_or(s).to_string(),
        Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#error {e:?}"),
    }
}

/// A number as a person types it: 40, 12.5, 250000.
pub fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// A MOSAIC code a spreadsheet turned into a number (`05.30` typed, `5.3` kept) written back
/// as the code: two digits, a dot, two digits.
fn mosaic_code(part: &str) -> String {
    match part.split_once('.') {
        Some((major, minor))
            if (1..=2).contains(&major.len())
                && (1..=2).contains(&minor.len())
                && major
                    .bytes()
                    .chain(minor.bytes())
                    .all(|b| b.is_ascii_digit()) =>
        {
            format!("{major:0>2}.{minor:0<2}")
        }
        _ => part.to_string(),
    }
}

/// Undoes the CSV export's formula neutralisation: `'=x` reads back as `=x`.
fn unneutralise(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest.to_string(),
        _ => s.to_string(),
    }
}

/// Maps a sheet's header to its columns; rows that are wholly empty are skipped.
fn columns_of(s: Sheet, rows: Vec<Vec<String>>) -> Result<Rows, Vec<CellError>> {
    let err = |row: usize, column: Option<&str>, message: String| CellError {
        sheet: s,
        row,
        column: column.map(str::to_string),
        message,
    };
    let mut it = rows.into_iter();
    let Some(header) = it.next() else {
        return Ok(Rows::default());
    };
    let mut errors = Vec::new();
    let mut index: Vec<Option<usize>> = vec![None; s.columns().len()];
    for (i, h) in header.iter().enumerate() {
        let name = h.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        if name.is_empty() {
            continue;
        }
        match s.columns().iter().position(|(n, _, _)| *n == name) {
            Some(c) if index[c].is_none() => index[c] = Some(i),
            Some(_) => errors.push(err(1, Some(h), "this column appears twice".into())),
            None => errors.push(err(
                1,
                Some(h),
                format!("unknown column: the columns are {}", s.header().join(", ")),
            )),
        }
    }
    for ((name, required, _), ix) in s.columns().iter().zip(&index) {
        if *required && ix.is_none() {
            errors.push(err(1, Some(name), "this required column is missing".into()));
        }
    }
    let mut out = Vec::new();
    for (n, row) in it.enumerate() {
        let line = n + 2;
        if out.len() >= MAX_ROWS {
            errors.push(err(line, None, format!("more than {MAX_ROWS} rows")));
            break;
        }
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let cells: Vec<String> = index
            .iter()
            .map(|ix| ix.and_then(|i| row.get(i)).cloned().unwrap_or_default())
            .collect();
        for (c, (name, _, _)) in cells.iter().zip(s.columns()) {
            if c.chars().count() > MAX_CELL {
                errors.push(err(
                    line,
                    Some(name),
                    format!("longer than {MAX_CELL} characters"),
                ));
            }
        }
        out.push((line, cells));
    }
    if errors.is_empty() {
        Ok(Rows(
            out.into_iter()
                .map(|(line, mut cells)| {
                    // The spreadsheet row travels with the cells, in a last hidden column.
                    cells.push(line.to_string());
                    cells
                })
                .collect(),
        ))
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// The cells of one row, by column name.
struct Row<'a> {
    sheet: Sheet,
    line: usize,
    cells: &'a [String],
    errors: &'a mut Vec<CellError>,
}

impl Row<'_> {
    fn get(&self, column: &str) -> Option<&str> {
        let i = self
            .sheet
            .columns()
            .iter()
            .position(|(n, _, _)| *n == column)?;
        self.cells
            .get(i)
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
    }

    fn error(&mut self, column: &str, message: String) {
        self.errors.push(CellError {
            sheet: self.sheet,
            row: self.line,
            column: Some(column.to_string()),
            message,
        });
    }

    fn text(&mut self, column: &str) -> Option<String> {
        self.get(column).map(str::to_string)
    }

    fn required(&mut self, column: &str) -> String {
        match self.get(column) {
            Some(v) => v.to_string(),
            None => {
                self.error(column, "is empty, and is required".into());
                String::new()
            }
        }
    }

    fn parse_required<T: std::str::FromStr>(&mut self, column: &str, what: &str) -> Option<T>
    where
        T::Err: fmt::Display,
    {
        if self.get(column).is_none() {
            self.error(column, "is empty, and is required".into());
            return None;
        }
        self.parse(column, what)
    }

    fn parse<T: std::str::FromStr>(&mut self, column: &str, what: &str) -> Option<T>
    where
        T::Err: fmt::Display,
    {
        let v = self.get(column)?.to_string();
        match v.parse::<T>() {
            Ok(x) => Some(x),
            Err(e) => {
                self.error(column, format!("{v} is not {what} ({e})"));
                None
            }
        }
    }

    fn list<T: std::str::FromStr>(&mut self, column: &str, what: &str) -> Vec<T>
    where
        T::Err: fmt::Display,
    {
        let Some(v) = self.get(column).map(str::to_string) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for part in v.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let fixed;
            let part = if column == "mosaic" {
                fixed = mosaic_code(part);
                fixed.as_str()
            } else {
                part
            };
            match part.parse::<T>() {
                Ok(x) => out.push(x),
                Err(e) => self.error(column, format!("{part} is not {what} ({e})")),
            }
        }
        out
    }
}

fn line_of(cells: &[String]) -> usize {
    cells.last().and_then(|l| l.parse().ok()).unwrap_or(0)
}

fn target_of(state: StateCode, cells: &[String], errors: &mut Vec<CellError>) -> Option<Target> {
    let mut r = Row {
        sheet: Sheet::Targets,
        line: line_of(cells),
        cells,
        errors,
    };
    let deadline = r.parse_required("deadline", "a date (YYYY-MM-DD)");
    let cycle = r.parse_required("cycle", "a cycle");
    let area = r.parse_required("area", "a commitment area");
    Some(Target {
        id: r.required("id"),
        state,
        version: 1,
        cycle: cycle?,
        area: area?,
        title: r.required("title"),
        description: r.text("description"),
        indicator: Indicator {
            kind: r
                .parse("kind", "an indicator kind")
                .unwrap_or(IndicatorKind::Quantitative),
            text: r.required("indicator"),
            unit: r.text("unit"),
            direction: r.parse("direction", "a direction"),
        },
        baseline: r.parse("baseline", "a number"),
        baseline_year: r.parse("baseline_year", "a year"),
        baseline_source: r.text("baseline_source"),
        value: r.parse("value", "a number"),
        deadline: deadline?,
        mosaic: r.list("mosaic", "a MOSAIC module"),
        refs: r.list("refs", "a reference"),
        sdg: r.text("sdg"),
        conditional_on: r.list("conditional_on", "a request id"),
        supersedes: None,
        reason: None,
    })
}

fn progress_of(cells: &[String], errors: &mut Vec<CellError>) -> Option<Progress> {
    let mut r = Row {
        sheet: Sheet::Progress,
        line: line_of(cells),
        cells,
        errors,
    };
    let as_of = r.parse_required("as_of", "a date (YYYY-MM-DD)");
    let evidence = match Evidence::from_parts(r.text("evidence"), r.text("sha256")) {
        Ok(e) => e,
        Err(e) => {
            r.error("evidence", e.to_string());
            None
        }
    };
    Some(Progress {
        id: String::new(),
        target: r.required("target"),
        target_version: 0,
        as_of: as_of?,
        value: r.parse("value", "a number"),
        assessment: r.parse("assessment", "an assessment"),
        note: r.text("note"),
        challenges: r.text("challenges"),
        evidence,
        source: r.text("source"),
        assistance_received: r.text("assistance_received"),
    })
}

fn need_of(state: StateCode, cells: &[String], errors: &mut Vec<CellError>) -> Option<Need> {
    let mut r = Row {
        sheet: Sheet::Requests,
        line: line_of(cells),
        cells,
        errors,
    };
    let area = r.parse_required("area", "a commitment area");
    let kind = r.parse_required("kind", "a kind of assistance");
    Some(Need {
        id: r.required("id"),
        state,
        title: r.required("title"),
        targets: r.list("targets", "a target id"),
        area: area?,
        mosaic: r.list("mosaic", "a MOSAIC module"),
        kind: kind?,
        cost: r.parse("cost", "a number"),
        currency: r.text("currency"),
        from: r.parse("from", "a date (YYYY-MM-DD)"),
        until: r.parse("until", "a date (YYYY-MM-DD)"),
        priority: r
            .parse("priority", "a priority")
            .unwrap_or(Priority::Medium),
    })
}

/// A finding of the checks as a cell error: the field (`--as-of`) names the column (`as_of`).
fn finding_cell(sheet: Sheet, line: usize, f: &Finding) -> CellError {
    let column = f.field.trim_start_matches('-').replace('-', "_");
    let known = sheet.columns().iter().any(|(n, _, _)| *n == column);
    CellError {
        sheet,
        row: line,
        column: known.then_some(column),
        message: f.message.clone(),
    }
}

/// What an import wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Imported {
    /// Target ids added.
    pub targets: Vec<String>,
    /// Progress report ids added.
    pub progress: Vec<String>,
    /// Request ids added.
    pub requests: Vec<String>,
    /// The checks' warnings, by sheet, row and column.
    pub warnings: Vec<CellError>,
    /// The same warnings as the checks found them (for the audit log).
    #[serde(skip)]
    pub findings: Vec<Finding>,
}

impl Node {
    /// The State's draft in the workbook's shape: each target's current version, every
    /// progress report and request not withdrawn, sorted by id.
    pub fn export_book(&self) -> Result<Book, NodeError> {
        let (_, draft, _) = self.drafts()?;
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let num = |v: Option<f64>| v.map(number_text).unwrap_or_default();
        let join = |v: Vec<String>| v.join("; ");
        let mut book = Book::default();
        for id in draft.target_ids() {
            let Some(t) = draft.latest(&id) else { continue };
            book.targets.0.push(vec![
                t.id.clone(),
                t.cycle.to_string(),
                t.area.slug().to_string(),
                t.title.clone(),
                opt(&t.description),
                t.indicator.kind.to_string(),
                t.indicator.text.clone(),
                opt(&t.indicator.unit),
                t.indicator
                    .direction
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                num(t.baseline),
                t.baseline_year.map(|y| y.to_string()).unwrap_or_default(),
                opt(&t.baseline_source),
                num(t.value),
                t.deadline.to_string(),
                join(t.mosaic.iter().map(|m| m.code().to_string()).collect()),
                join(t.refs.clone()),
                opt(&t.sdg),
                join(t.conditional_on.clone()),
            ]);
        }
        let mut reports: Vec<&Progress> = draft.progress.values().collect();
        reports.sort_by(|a, b| (&a.target, a.as_of, &a.id).cmp(&(&b.target, b.as_of, &b.id)));
        for p in reports {
            book.progress.0.push(vec![
                p.target.clone(),
                p.as_of.to_string(),
                num(p.value),
                p.assessment.map(|a| a.to_string()).unwrap_or_default(),
                opt(&p.note),
                opt(&p.challenges),
                p.evidence
                    .as_ref()
                    .map(|e| e.uri.clone())
                    .unwrap_or_default(),
                p.evidence
                    .as_ref()
                    .map(|e| e.sha256.clone())
                    .unwrap_or_default(),
                opt(&p.source),
                opt(&p.assistance_received),
            ]);
        }
        for n in draft.needs.values() {
            book.requests.0.push(vec![
                n.id.clone(),
                n.title.clone(),
                join(n.targets.clone()),
                n.area.slug().to_string(),
                join(n.mosaic.iter().map(|m| m.code().to_string()).collect()),
                n.kind.to_string(),
                num(n.cost),
                opt(&n.currency),
                n.from.map(|d| d.to_string()).unwrap_or_default(),
                n.until.map(|d| d.to_string()).unwrap_or_default(),
                n.priority.to_string(),
            ]);
        }
        Ok(book)
    }

    /// Imports a workbook into the State's draft: every row becomes a new record, checked as
    /// the CLI checks it, all in one change. If any row is wrong (or names a record that
    /// exists already), nothing is written and every error names its sheet, row and column.
    pub fn import_book(&mut self, book: &Book) -> Result<Imported, SheetError> {
        let (state, _, public) = self.drafts()?;
        let published_progress = self.published_ids(&DocId::State(state), "progress")?;
        let published_needs = self.published_ids(&DocId::State(state), "needs")?;
        let published_targets = self.published_ids(&DocId::State(state), "targets")?;
        let today = self.clock.today();
        let mut errors: Vec<CellError> = Vec::new();
        let targets: Vec<(usize, Target)> = book
            .targets
            .0
            .iter()
            .filter_map(|c| Some((line_of(c), target_of(state, c, &mut errors)?)))
            .collect();
        let progress: Vec<(usize, Progress)> = book
            .progress
            .0
            .iter()
            .filter_map(|c| Some((line_of(c), progress_of(c, &mut errors)?)))
            .collect();
        let needs: Vec<(usize, Need)> = book
            .requests
            .0
            .iter()
            .filter_map(|c| Some((line_of(c), need_of(state, c, &mut errors)?)))
            .collect();
        if !errors.is_empty() {
            return Err(SheetError::Cells(errors));
        }
        let result = self.write(&DocId::Draft(state), |w, before| {
            let mut held = StateData::from_json(before);
            for (id, n) in &public.needs {
                held.needs.entry(id.clone()).or_insert_with(|| n.clone());
            }
            let mut out = Imported::default();
            let mut errors: Vec<CellError> = Vec::new();
            let mut findings = |sheet: Sheet, line: usize, f: Vec<Finding>, out: &mut Imported| {
                for x in f {
                    let cell = finding_cell(sheet, line, &x);
                    match x.severity {
                        Severity::Error => errors.push(cell),
                        Severity::Warning => {
                            out.warnings.push(cell);
                            out.findings.push(x);
                        }
                    }
                }
            };
            // Targets and requests name each other: the requests are held first (a target
            // may be conditional on one in the same workbook), the targets checked, then the
            // requests against the targets.
            for (line, n) in &needs {
                if held.needs.contains_key(&n.id)
                    || held.withdrawn_needs.contains_key(&n.id)
                    || published_needs.contains(&n.id)
                    || public.retracted.contains_key(&format!("needs/{}", n.id))
                    || w.withdrawal_written("needs", &n.id)
                {
                    findings(
                        Sheet::Requests,
                        *line,
                        vec![exists("--id", &n.id)],
                        &mut out,
                    );
                }
            }
            let before_needs = held.needs.clone();
            for (_, n) in &needs {
                held.needs.entry(n.id.clone()).or_insert_with(|| n.clone());
            }
            for (line, t) in &targets {
                let prefix = format!("{}/", t.id);
                if held.latest(&t.id).is_some()
                    || published_targets.iter().any(|k| k.starts_with(&prefix))
                {
                    findings(Sheet::Targets, *line, vec![exists("--id", &t.id)], &mut out);
                    continue;
                }
                findings(
                    Sheet::Targets,
                    *line,
                    check_target(t, &held, today, Stage::Draft),
                    &mut out,
                );
                held.targets.insert((t.id.clone(), 1), t.clone());
            }
            for (line, n) in &needs {
                let mut others = held.clone();
                others.needs = before_needs.clone();
                for (_, m) in needs.iter().filter(|(_, m)| m.id != n.id) {
                    others.needs.insert(m.id.clone(), m.clone());
                }
                findings(Sheet::Requests, *line, check_need(n, &others), &mut out);
            }
            let mut written_progress = Vec::new();
            let mut invalid: Vec<CellError> = Vec::new();
            for (line, p) in &progress {
                let mut p = p.clone();
                let Some(target) = held.latest(&p.target).cloned() else {
                    findings(
                        Sheet::Progress,
                        *line,
                        check_progress(&p, &held, today),
                        &mut out,
                    );
                    continue;
                };
                p.target_version = target.version;
                let id = crate::records::progress_id(&p, w, &[&held, &public], &published_progress);
                p.id = id.clone();
                if let Err(e) = p.validate(&target) {
                    invalid.push(CellError {
                        sheet: Sheet::Progress,
                        row: *line,
                        column: None,
                        message: e.to_string(),
                    });
                    continue;
                }
                findings(
                    Sheet::Progress,
                    *line,
                    check_progress(&p, &held, today),
                    &mut out,
                );
                held.progress.insert(id.clone(), p.clone());
                written_progress.push(p);
            }
            #[allow(clippy::drop_non_drop)]
            drop(findings);
            errors.append(&mut invalid);
            if !errors.is_empty() {
                // Nothing put yet: the transaction writes no change.
                return Ok(Err(errors));
            }
            for (_, n) in &needs {
                w.put("needs", &n.id, n)?;
                out.requests.push(n.id.clone());
            }
            for (_, t) in &targets {
                w.put("targets", &target_key(&t.id, 1), t)?;
                out.targets.push(t.id.clone());
            }
            for p in &written_progress {
                w.put("progress", &p.id, p)?;
                out.progress.push(p.id.clone());
            }
            Ok(Ok(out))
        });
        match result {
            Ok((Ok(out), _)) => {
                self.record_warnings(&DocId::Draft(state), &out.findings);
                Ok(out)
            }
            Ok((Err(cells), _)) => Err(SheetError::Cells(cells)),
            Err(e) => Err(SheetError::Node(e)),
        }
    }
}

fn exists(field: &'static str, id: &str) -> Finding {
    Finding {
        severity: Severity::Error,
        record: id.to_string(),
        field,
        message: format!(
            "{id} exists already: change it with `edit`, or remove the row (an import only adds)"
        ),
    }
}
