//! `ubuntu-ci completions SHELL` and `ubuntu-ci man --out-dir DIR`: the shell completion
//! scripts and the manual pages, both generated from the clap definitions so that they
//! never drift from the options the command takes.

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use ubuntu_ci_core::Error;

use crate::cli::Cli;

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The folder the pages are written to (e.g. /usr/local/share/man/man1)
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out_dir: PathBuf,
}

/// Prints the completion script of `args.shell` on stdout.
pub fn completions(args: &CompletionsArgs) {
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "ubuntu-ci",
        &mut std::io::stdout(),
    );
}

/// Writes `ubuntu-ci.1` and a page per subcommand (`ubuntu-ci-ppa-publish.1`, …) into
/// `args.out_dir`, and prints the path of each.
pub fn man(args: &ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out_dir)
        .map_err(|e| Error::from(e).with_resource(args.out_dir.display().to_string()))?;
    let mut command = Cli::command();
    command.build();
    for page in write_pages(&command, "ubuntu-ci", &args.out_dir)? {
        println!("{}", page.display());
    }
    Ok(())
}

/// The pages of `command` (named `name`) and of its subcommands, recursively.
fn write_pages(command: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let page = dir.join(format!("{name}.1"));
    // The page's title is its file's name; its synopsis keeps the command as typed
    // (`ubuntu-ci ppa publish`), which `build()` set.
    let named = command.clone().name(name.to_owned());
    let mut text = Vec::new();
    clap_mangen::Man::new(named).render(&mut text)?;
    std::fs::write(&page, text)
        .map_err(|e| Error::from(e).with_resource(page.display().to_string()))?;
    let mut pages = vec![page];
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        pages.extend(write_pages(
            sub,
            &format!("{name}-{}", sub.get_name()),
            dir,
        )?);
    }
    Ok(pages)
}
