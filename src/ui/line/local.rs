//! `install`, `uninstall` and `remove`: install-side transactions on the local
//! game dir, without the network; through the runtime that runs on the state dir, when
//! one does (it owns the game dir then).

use std::process::ExitCode;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::install::{self, InstallError, unpack::ArchiveUnpacker};

use super::link::Link;
use super::{LineError, LocalError};
use crate::peer::{PeerCommand, PeerEvent};

#[derive(Clone, Copy)]
pub enum LocalOperation {
    Install,
    Uninstall,
    Remove,
}

/// Like every command, it first takes the state-dir lock and runs startup recovery; or,
/// when a runtime holds the state dir, asks it.
pub async fn local_operation(config: Config, operation: LocalOperation, id: String) -> Result<ExitCode, LineError> {
    if let Some(mut runtime) = Link::attach_if_running(&config).await? {
        return through_runtime(&mut runtime, operation, &id).await;
    }
    let catalog = Catalog::load(config.catalog_file.as_deref())?;
    let outcome = tokio::task::spawn_blocking(move || -> Result<(String, install::Completed), LocalError> {
        let _locks = install::OwnerLocks::acquire(&config.state_dir, &config.game_dir)?;
        let report = install::recover(&config.game_dir, &config.state_dir);
        for problem in &report.left_alone {
            eprintln!("lanspread: recovery left alone {problem}");
        }
        let transaction = install::Transaction {
            game_dir: &config.game_dir,
            state_dir: &config.state_dir,
            id: &id,
            failpoints: install::Failpoints::default(),
        };
        let root = config.game_dir.join(&id);
        Ok(match operation {
            LocalOperation::Install => {
                if !catalog.contains(&id) {
                    return Err(InstallError::UnknownGame(id).into());
                }
                let completed = transaction.install_downloaded(&ArchiveUnpacker, &mut |_| {}, &|| false)?;
                let verb = if completed.updated { "updated" } else { "installed" };
                (format!("{verb} {id} into {}", root.join("local").display()), completed)
            }
            LocalOperation::Uninstall => (
                format!("uninstalled {id} (removed {})", root.join("local").display()),
                transaction.uninstall()?,
            ),
            LocalOperation::Remove
                if !root.join(crate::layout::VERSION_FILE).exists()
                    && crate::peer::download::journal::exists(&config.state_dir, &id) =>
            {
                // An unfinished download: its files and journal go, nothing else.
                let files = crate::peer::download::journal::remove_partial(&config.state_dir, &config.game_dir, &id)
                    .map_err(|source| InstallError::Io {
                        action: "remove the unfinished download in".to_owned(),
                        path: root.clone(),
                        source,
                    })?;
                (
                    format!("removed the unfinished download of {id} ({files} files)"),
                    install::Completed::default(),
                )
            }
            LocalOperation::Remove => (
                format!("removed {id} ({})", root.display()),
                transaction.remove_downloaded(&catalog)?,
            ),
        })
    })
    .await?;
    match outcome {
        Ok((message, completed)) => {
            println!("{message}");
            for warning in completed.warnings {
                eprintln!("lanspread: warning: {warning} (startup recovery will finish it)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("lanspread: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The operation done by the runtime this command is attached to, with the same lines and
/// exit codes as done here.
async fn through_runtime(runtime: &mut Link, operation: LocalOperation, id: &str) -> Result<ExitCode, LineError> {
    // An attached runtime's first event is its library: where its game dir is.
    let game_dir = match runtime.event().await? {
        PeerEvent::LibraryUpdated(library) => library.game_dir,
        _ => Default::default(),
    };
    let root = game_dir.join(id);
    let command = match operation {
        LocalOperation::Install => PeerCommand::InstallGame { id: id.to_owned() },
        LocalOperation::Uninstall => PeerCommand::UninstallGame { id: id.to_owned() },
        LocalOperation::Remove => PeerCommand::RemoveDownloadedGame { id: id.to_owned() },
    };
    runtime.send(command).await?;
    loop {
        let event = runtime.event().await?;
        if event.game_id() != Some(id) {
            continue;
        }
        let done = match event {
            PeerEvent::InstallGameFinished { updated, .. } => {
                let verb = if updated { "updated" } else { "installed" };
                format!("{verb} {id} into {}", root.join("local").display())
            }
            PeerEvent::UninstallGameFinished { .. } => {
                format!("uninstalled {id} (removed {})", root.join("local").display())
            }
            PeerEvent::RemoveDownloadedGameFinished { .. } => format!("removed {id} ({})", root.display()),
            PeerEvent::InstallGameFailed { reason, .. }
            | PeerEvent::UninstallGameFailed { reason, .. }
            | PeerEvent::RemoveDownloadedGameFailed { reason, .. }
            | PeerEvent::OperationRefused { reason, .. } => {
                eprintln!("lanspread: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            _ => continue,
        };
        println!("{done}");
        return Ok(ExitCode::SUCCESS);
    }
}
