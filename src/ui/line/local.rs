//! `install`, `uninstall` and `remove`: install-side transactions on the local
//! game dir, without the network.

use std::process::ExitCode;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::install::{self, InstallError, unpack::ArchiveUnpacker};

use super::{LineError, LocalError};

#[derive(Clone, Copy)]
pub enum LocalOperation {
    Install,
    Uninstall,
    Remove,
}

/// Like every command, it first takes the state-dir lock and runs startup recovery.
pub async fn local_operation(config: Config, operation: LocalOperation, id: String) -> Result<ExitCode, LineError> {
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
