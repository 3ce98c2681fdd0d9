//! The demo's six running nodes: where their homes live (a temporary folder, or `--keep`),
//! starting each one, and stopping them all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::federation::Member;
use crate::home::InitOptions;
use crate::sync::EngineConfig;

use super::DemoError;

/// Where the nodes' homes live: a temporary folder removed at the end, or the `--keep` folder.
#[derive(Debug)]
pub(super) enum Homes {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Homes {
    pub(super) fn new(keep: Option<PathBuf>) -> Result<Homes, DemoError> {
        let Some(dir) = keep else {
            let tmp = tempfile::Builder::new()
                .prefix("poa-demo-")
                .tempdir()
                .map_err(|source| DemoError::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
            return Ok(Homes::Temp(tmp));
        };
        let io = |source| DemoError::Io {
            path: dir.clone(),
            source,
        };
        if dir.is_file() {
            return Err(DemoError::Keep {
                dir,
                why: "is a file",
            });
        }
        if dir.exists() {
            if std::fs::read_dir(&dir).map_err(io)?.next().is_some() {
                return Err(DemoError::Keep {
                    dir,
                    why: "is not empty",
                });
            }
        } else {
            std::fs::create_dir_all(&dir).map_err(io)?;
        }
        Ok(Homes::Kept(dir))
    }

    pub(super) fn path(&self) -> &Path {
        match self {
            Homes::Temp(t) => t.path(),
            Homes::Kept(p) => p,
        }
    }
}

/// The six running nodes.
pub(super) struct Federation {
    /// One per State of the data set, in the same order.
    pub(super) states: Vec<Member>,
    pub(super) xrb: Member,
    pub(super) un: Member,
    pub(super) donor: Member,
}

impl Federation {
    pub(super) fn all(&self) -> Vec<&Member> {
        let mut all: Vec<&Member> = self.states.iter().collect();
        all.extend([&self.xrb, &self.un, &self.donor]);
        all
    }

    /// The label of the node whose full NodeId is `id`.
    pub(super) fn label_of(&self, id: &str) -> String {
        self.all()
            .into_iter()
            .find(|m| m.id().to_string() == id)
            .map(|m| m.label.clone())
            .unwrap_or_else(|| id.chars().take(7).collect())
    }

    /// Stops every node gracefully, each saying goodbye to its peers; all at once, as a
    /// federation that shuts down does not wait for one node after another.
    pub(super) async fn stop(self) {
        let mut stopping = tokio::task::JoinSet::new();
        for m in self
            .states
            .into_iter()
            .chain([self.xrb, self.un, self.donor])
        {
            stopping.spawn(m.stop());
        }
        while stopping.join_next().await.is_some() {}
    }
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        // Look for work often: the demo is about how fast things travel.
        poll: Duration::from_millis(50),
        round_timeout: Duration::from_secs(30),
        ..EngineConfig::default()
    }
}

pub(super) async fn start(
    homes: &Homes,
    label: &str,
    opts: InitOptions,
) -> Result<Member, DemoError> {
    let dir = homes.path().join(label.to_ascii_lowercase());
    let member = Member::start(label, &dir, &opts, engine_config()).await?;
    println!(
        "   {label:<12} {:<26} {}  {:<16} {}",
        opts.participant.to_string(),
        member.id().short(),
        member.addr(),
        dir.display()
    );
    Ok(member)
}
