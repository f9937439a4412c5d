//! Terminal ownership: [`TerminalGuard`] switches to raw mode, the alternate
//! screen and a hidden cursor, and puts everything back when dropped — on a
//! normal return, on an error, and (through a panic hook that restores first,
//! then runs the previous hook so the message lands on a sane terminal) on a panic.

use std::io::{self, Stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// Whether a guard currently holds the terminal; the panic hook restores only then.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

pub type TuiTerminal = Terminal<CrosstermBackend<Stdout>>;

/// The terminal in TUI mode for as long as this lives.
pub struct TerminalGuard {
    terminal: TuiTerminal,
}

impl TerminalGuard {
    /// Takes over the terminal. On failure, whatever was switched on is switched off again.
    pub fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        ACTIVE.store(true, Ordering::SeqCst);
        let entered = enable_raw_mode()
            .and_then(|()| execute!(io::stdout(), EnterAlternateScreen, Hide))
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match entered {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(err) => {
                restore();
                Err(err)
            }
        }
    }

    pub fn terminal_mut(&mut self) -> &mut TuiTerminal {
        &mut self.terminal
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen and shows the cursor; safe to call twice.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        // Best effort: there is no better place to report a terminal that will not reset.
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
    }
}

fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// Whether the screen may use colour: not when `NO_COLOR` is set (to anything but the
/// empty string, as no-color.org says), nor on a terminal without colours (`TERM` unset,
/// `dumb`, or a VT100-family one). Without colour, the TUI draws no colour at all rather
/// than some: see `render::strip_colours`.
pub fn colour_wanted(no_color: Option<&str>, term: Option<&str>) -> bool {
    let no_color = no_color.is_some_and(|value| !value.is_empty());
    let colourless_term = match term {
        None => true,
        Some(term) => term.is_empty() || term == "dumb" || term.starts_with("vt1") || term.starts_with("vt2"),
    };
    !no_color && !colourless_term
}

#[cfg(test)]
mod tests {
    use super::colour_wanted;

    #[test]
    fn colour_is_off_with_no_color_and_on_colourless_terminals() {
        assert!(colour_wanted(None, Some("xterm-256color")));
        assert!(colour_wanted(None, Some("linux")));
        assert!(colour_wanted(Some(""), Some("screen")), "an empty NO_COLOR is unset");
        assert!(!colour_wanted(Some("1"), Some("xterm-256color")));
        for term in [None, Some("dumb"), Some("vt100"), Some("vt220"), Some("")] {
            assert!(!colour_wanted(None, term), "{term:?}");
        }
    }
}
