//! The command line: global options and subcommands, as clap reads them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Continuous integration of Debian/Ubuntu source packages: tickets for source uploads,
/// built with sbuild into a PPA, installed into an image, tested with autopkgtest, published.
#[derive(Debug, Parser)]
#[command(name = "ubuntu-ci", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Where local state lives [default: $XDG_DATA_HOME/ubuntu-ci]
    #[arg(long, global = true, env = "UBUNTU_CI_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Use the ubuntu-ci server at URL instead of local state
    #[arg(long, global = true, env = "UBUNTU_CI_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token for the server
    #[arg(
        long,
        global = true,
        env = "UBUNTU_CI_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Configuration file [default: $XDG_CONFIG_HOME/ubuntu-ci/config.toml]
    #[arg(long, global = true, env = "UBUNTU_CI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print results as JSON
    #[arg(long, global = true, env = "UBUNTU_CI_JSON", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
    /// More log output (-v, -vv); UBUNTU_CI_LOG takes a tracing filter
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// No progress on stderr: only results, warnings and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour in what is printed: auto (on a terminal, unless NO_COLOR is set), always, never
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

/// When to print in colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set
    Auto,
    /// Always, even into a file or a pipe
    Always,
    /// Never
    Never,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a ticket for one or more source package uploads and store their files
    #[command(visible_alias = "create_ticket")]
    CreateTicket(crate::commands::create_ticket::CreateTicketArgs),
    /// Show, list and watch tickets
    #[command(subcommand)]
    Ticket(crate::commands::ticket::TicketCommand),
    /// Put, get, list and delete data store objects
    #[command(subcommand)]
    Store(crate::commands::store::StoreCommand),
    /// Get, release and list PPAs; publish into them; print their signing key
    #[command(subcommand)]
    Ppa(crate::commands::ppa::PpaCommand),
    /// Build a source upload into a PPA with sbuild, showing the build log live
    Build(crate::commands::build::BuildArgs),
    /// Make base images, and images with a PPA's packages installed
    #[command(subcommand)]
    Image(crate::commands::image::ImageCommand),
    /// Run a package's DEP-8 tests in an image with autopkgtest, showing them live
    Test(crate::commands::test::TestArgs),
    /// Check this machine's prerequisites (Debian tools, subordinate ids, state) and say how
    /// to fix what is missing
    Doctor(crate::commands::doctor::DoctorArgs),
    /// Run the REST API and serve the data store
    Serve(crate::commands::serve::ServeArgs),
    /// Stop a ticket's request under way (its lander ends the work and releases the PPA)
    Cancel(crate::commands::cancel::CancelArgs),
    /// Take a failed or cancelled ticket's request up again at the step it stopped at
    Retry(crate::commands::retry::RetryArgs),
    /// Where a ticket's request stands; with --follow, its progress until it ends
    Status(crate::commands::status::StatusArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell
    Completions(crate::commands::manual::CompletionsArgs),
    /// Write the manual pages (ubuntu-ci.1 and one per subcommand) into a folder
    Man(crate::commands::manual::ManArgs),
}

/// A ticket given on the command line: its id (`7`) or its URI (`/api/v1/ticket/7/`, or the
/// whole URL); every command that takes a ticket takes both.
pub fn ticket_id(text: &str) -> Result<i64, String> {
    ubuntu_ci_core::model::Uri::<ubuntu_ci_core::model::Ticket>::parse(text)
        .map(|uri| uri.id())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    /// Every path of subcommands (`["ppa", "remove"]`), the top included (`[]`).
    fn paths(command: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(prefix.clone());
        for sub in command.get_subcommands() {
            let mut path = prefix.clone();
            path.push(sub.get_name().to_owned());
            paths(sub, path, out);
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        // clap's own checks (an option that clashes with --version or --help, …), which a
        // release build skips.
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_shows_its_help() {
        let mut all = Vec::new();
        paths(&Cli::command(), Vec::new(), &mut all);
        assert!(all.len() > 30, "{all:?}");
        for path in all {
            let mut args = vec!["ubuntu-ci".to_owned()];
            args.extend(path.iter().cloned());
            args.push("--help".to_owned());
            let err = Cli::try_parse_from(&args).expect_err("--help ends the parse");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::DisplayHelp,
                "{args:?}: {err}"
            );
            assert!(
                err.to_string().contains("Usage: ubuntu-ci"),
                "{args:?}: {err}"
            );
        }
    }

    #[test]
    fn every_ticket_argument_takes_an_id_or_a_uri() {
        for text in [
            "7",
            "/api/v1/ticket/7/",
            "/api/v1/ticket/7",
            "http://ci:8000/api/v1/ticket/7/",
        ] {
            for args in [
                vec!["cancel", text],
                vec!["retry", text],
                vec!["status", text],
                vec!["ticket", "show", text],
                vec!["ticket", "watch", text],
                vec!["ppa", "get", "--ticket", text],
                vec!["ppa", "release", "--ticket", text],
                vec!["ppa", "renew", "--ticket", text],
            ] {
                let mut argv = vec!["ubuntu-ci"];
                argv.extend(&args);
                assert!(Cli::try_parse_from(&argv).is_ok(), "{argv:?}");
            }
        }
        for bad in ["0", "-3", "/api/v1/spu/7/", "seven"] {
            assert!(
                Cli::try_parse_from(["ubuntu-ci", "cancel", bad]).is_err(),
                "{bad}"
            );
        }
    }

    /// Splits a shell command line into words: quotes are removed, `$(…)` and `"$x"` stay
    /// one word each. Enough for the commands the docs show.
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' | '"' => {
                    in_word = true;
                    for q in chars.by_ref() {
                        if q == c {
                            break;
                        }
                        word.push(q);
                    }
                }
                '$' if chars.peek() == Some(&'(') => {
                    in_word = true;
                    let mut depth = 0;
                    word.push('$');
                    for q in chars.by_ref() {
                        word.push(q);
                        match q {
                            '(' => depth += 1,
                            ')' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                c if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    in_word = true;
                    word.push(c);
                }
            }
        }
        if in_word {
            words.push(word);
        }
        words
    }

    /// The `ubuntu-ci …` commands in the code blocks of the README and docs/, each joined
    /// across `\` continuations, cut at a pipe, a redirection or a comment, with the file
    /// and line it is on.
    fn documented_commands() -> Vec<(String, Vec<String>)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = vec![root.join("README.md")];
        let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
            .expect("docs/")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        docs.sort();
        files.extend(docs);
        let mut commands = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("doc");
            let mut in_block = false;
            let mut joined = String::new();
            let mut start = 0;
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("```") {
                    in_block = !in_block;
                    continue;
                }
                // Indented blocks count too (four spaces), as Markdown reads them.
                if !in_block && !line.starts_with("    ") {
                    continue;
                }
                if joined.is_empty() {
                    start = n + 1;
                }
                let line = line.trim();
                if let Some(head) = line.strip_suffix('\\') {
                    joined.push_str(head);
                    joined.push(' ');
                    continue;
                }
                joined.push_str(line);
                let mut command = std::mem::take(&mut joined);
                // `base=$(ubuntu-ci image bootstrap)`: the command inside the substitution.
                for opening in ["$(ubuntu-ci ", "$(target/debug/ubuntu-ci "] {
                    if let Some(at) = command.find(opening) {
                        let inner = &command[at + 2..];
                        command = inner[..inner.find(')').unwrap_or(inner.len())].to_owned();
                    }
                }
                let mut words = shell_words(&command);
                // The command may follow sudo or an environment assignment.
                let Some(at) = words
                    .iter()
                    .position(|w| w == "ubuntu-ci" || w.ends_with("/ubuntu-ci"))
                else {
                    continue;
                };
                let mut words: Vec<String> = words.drain(at..).collect();
                let end = words
                    .iter()
                    .position(|w| {
                        w.starts_with('#')
                            || ["|", ">", "2>", "&&", ";", "||", "&"].contains(&w.as_str())
                    })
                    .unwrap_or(words.len());
                words.truncate(end);
                if words.first().is_some_and(|w| w.ends_with("ubuntu-ci")) {
                    commands.push((format!("{}:{start}", file.display()), words));
                }
            }
        }
        commands
    }

    /// A usage synopsis (`ubuntu-ci ppa remove PPA NAME [VERSION] [--series S]`) rather
    /// than a command: it has brackets or upper-case placeholders.
    fn is_synopsis(words: &[String]) -> bool {
        words.iter().skip(1).any(|w| {
            w.contains('[')
                || w.contains('<')
                || w.contains('…')
                || w.ends_with("...")
                || (!w.is_empty()
                    && !w.starts_with('-')
                    && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        })
    }

    /// Checks a synopsis against the command line: its subcommands exist and each option
    /// it names is one that subcommand takes.
    fn check_synopsis(words: &[String]) -> Result<(), String> {
        let top = Cli::command();
        let mut command = &top;
        let mut globals: Vec<&clap::Arg> = top.get_arguments().collect();
        for word in words.iter().skip(1) {
            let word = word.trim_matches(|c| c == '[' || c == ']');
            let word = word.trim_end_matches("...").trim_end_matches('…');
            if let Some(option) = word.strip_prefix('-') {
                let option = option.split('=').next().unwrap_or_default();
                let known = command
                    .get_arguments()
                    .chain(globals.iter().copied())
                    .any(|a| match option.strip_prefix('-') {
                        Some(long) => {
                            a.get_long() == Some(long)
                                || long == "help"
                                || (long == "version" && command.get_name() == "ubuntu-ci")
                        }
                        None => option.chars().all(|c| a.get_short() == Some(c) || c == 'h'),
                    });
                if !known {
                    return Err(format!("{} takes no option {word}", command.get_name()));
                }
            } else if let Some(sub) = command.find_subcommand(word) {
                globals.extend(command.get_arguments().filter(|a| a.is_global_set()));
                command = sub;
            }
        }
        Ok(())
    }

    #[test]
    fn every_command_the_docs_show_parses() {
        let commands = documented_commands();
        assert!(
            commands.len() > 40,
            "only {} commands found",
            commands.len()
        );
        let mut bad = Vec::new();
        for (place, words) in &commands {
            // Output shown in a block (`ubuntu-ci serve: listening on …`) is no command.
            if words.get(1).is_some_and(|w| w.ends_with(':')) {
                continue;
            }
            let result = if is_synopsis(words) {
                check_synopsis(words)
            } else {
                match Cli::try_parse_from(words) {
                    Ok(_) => Ok(()),
                    Err(err) => {
                        use clap::error::ErrorKind;
                        match err.kind() {
                            ErrorKind::DisplayHelp
                            | ErrorKind::DisplayVersion
                            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Ok(()),
                            _ => Err(err
                                .to_string()
                                .lines()
                                .next()
                                .unwrap_or_default()
                                .to_owned()),
                        }
                    }
                }
            };
            if let Err(err) = result {
                bad.push(format!("{place}: {}\n  {err}", words.join(" ")));
            }
        }
        assert!(
            bad.is_empty(),
            "commands in the docs that do not parse:\n{}",
            bad.join("\n")
        );
    }

    #[test]
    fn synopses_are_checked_for_their_options() {
        let words = |text: &str| text.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert!(check_synopsis(&words(
            "ubuntu-ci ppa remove PPA NAME [VERSION] [--series S]"
        ))
        .is_ok());
        assert!(check_synopsis(&words("ubuntu-ci ppa remove PPA NAME [--version V]")).is_err());
        assert!(check_synopsis(&words("ubuntu-ci --json ticket list [--limit N] [-q]")).is_ok());
        assert!(is_synopsis(&words("ubuntu-ci ticket show ID")));
        assert!(!is_synopsis(&words("ubuntu-ci ticket show 1")));
    }
}
