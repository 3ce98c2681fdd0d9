//! Evidence files: the SHA-256 a progress report cites, computed from the file itself, and
//! `evidence verify FILE`, which says which reports held here cite that file.

use std::io::Read;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::node::{Node, NodeError};
use poa_protocol::doc::DocId;

/// The SHA-256 of a file, lowercase hex, read in pieces (evidence may be a large scan).
pub fn sha256_file(path: &Path) -> Result<String, NodeError> {
    let unreadable = |e: std::io::Error| {
        NodeError::Input(format!(
            "cannot read the evidence file {}: {e}",
            path.display()
        ))
    };
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(crate::format::hex(&hasher.finalize()))
}

/// A progress report that cites a file as its evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cited {
    /// The document it is in: `state/XAA` or `state/XAA/draft`.
    pub doc: String,
    /// The report id.
    pub report: String,
    /// Where the report says the evidence is.
    pub uri: String,
}

impl Node {
    /// The progress reports held here (published documents of every State, and this State's
    /// draft) whose evidence has this SHA-256.
    pub fn cited_by(&self, sha256: &str) -> Result<Vec<Cited>, NodeError> {
        let mut out = Vec::new();
        for id in self.store.doc_ids()? {
            if !matches!(id, DocId::State(_) | DocId::Draft(_)) {
                continue;
            }
            let data = self.state_data(&id)?;
            for p in data
                .progress
                .values()
                .chain(data.withdrawn_progress.values())
            {
                if let Some(e) = &p.evidence
                    && e.sha256.eq_ignore_ascii_case(sha256)
                {
                    out.push(Cited {
                        doc: id.to_string(),
                        report: p.id.clone(),
                        uri: e.uri.clone(),
                    });
                }
            }
        }
        Ok(out)
    }
}
