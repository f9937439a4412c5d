//! Raw keys to [`Action`]s through one table, [`KEY_TABLE`]. The help overlay
//! is generated from the same table, so a key that works is a key that is
//! listed, and the other way round.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::ui::app::QueueMove;

/// What the user asked for, independent of the key that asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    NextPane,
    PrevPane,
    /// Download the selected game (it installs itself afterwards when auto-install is on).
    Download,
    StreamInstall,
    Update,
    Install,
    Uninstall,
    RemoveDownloaded,
    /// Hash the selected downloaded game against its peers (a repair is offered if damaged).
    Verify,
    Cancel,
    /// Run the selected failed operation (or the game's last failed one) again.
    Retry,
    /// Forget the ended transfers listed in the Transfers pane.
    ClearEnded,
    /// Pause the selected running download (it keeps what it verified), or pause / resume
    /// a queued one.
    PauseResume,
    /// Move the selected queued download in the queue.
    Queue(crate::ui::app::QueueMove),
    CycleSort,
    StartFilter,
    /// A character typed into the filter.
    FilterInput(char),
    FilterBackspace,
    /// Keep the filter and go back to the panes.
    FilterAccept,
    /// Clear the filter and go back to the panes.
    FilterClear,
    ToggleHelp,
    /// Open the details of the selected game or peer.
    Details,
    Confirm,
    /// Esc: close whatever is open (help, dialog, filter) or clear the status line.
    Back,
    Quit,
    /// Stop the runtime this TUI is attached to (asks first).
    StopRuntime,
}

/// Which keys are live: the help overlay and dialogs capture the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    Normal,
    Filter,
    Dialog,
    Help,
    /// The details view of a game or peer.
    Details,
    /// The "Terminal too small" screen: nothing can be seen, so only quitting acts.
    TooSmall,
}

impl InputMode {
    pub fn title(self) -> &'static str {
        match self {
            InputMode::Normal => "Keys",
            InputMode::Filter => "While typing a filter",
            InputMode::Dialog => "In a confirmation dialog",
            InputMode::Help => "In this help",
            InputMode::Details => "In a details view",
            InputMode::TooSmall => "While the terminal is too small",
        }
    }
}

/// One key, or any printable character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Code(KeyCode),
    Ctrl(char),
    AnyChar,
}

impl Key {
    const fn char(c: char) -> Key {
        Key::Code(KeyCode::Char(c))
    }

    /// The key as the help overlay names it.
    pub fn label(self) -> String {
        match self {
            Key::Code(KeyCode::Char(' ')) => "Space".to_owned(),
            Key::Code(KeyCode::Char(c)) => c.to_string(),
            Key::Code(KeyCode::Up) => "↑".to_owned(),
            Key::Code(KeyCode::Down) => "↓".to_owned(),
            Key::Code(KeyCode::Left) => "←".to_owned(),
            Key::Code(KeyCode::Right) => "→".to_owned(),
            Key::Code(KeyCode::PageUp) => "PgUp".to_owned(),
            Key::Code(KeyCode::PageDown) => "PgDn".to_owned(),
            Key::Code(KeyCode::Home) => "Home".to_owned(),
            Key::Code(KeyCode::End) => "End".to_owned(),
            Key::Code(KeyCode::Tab) => "Tab".to_owned(),
            Key::Code(KeyCode::BackTab) => "Shift-Tab".to_owned(),
            Key::Code(KeyCode::Enter) => "Enter".to_owned(),
            Key::Code(KeyCode::Esc) => "Esc".to_owned(),
            Key::Code(KeyCode::Backspace) => "Backspace".to_owned(),
            Key::Code(code) => code.to_string(),
            Key::Ctrl(c) => format!("Ctrl-{}", c.to_ascii_uppercase()),
            Key::AnyChar => "any letter".to_owned(),
        }
    }

    fn matches(self, event: &KeyEvent) -> bool {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        let alt = event.modifiers.contains(KeyModifiers::ALT);
        match self {
            // Shift is part of the character itself (`G`, `?`), so it is not compared.
            Key::Code(code) => !ctrl && !alt && event.code == code,
            Key::Ctrl(c) => ctrl && event.code == KeyCode::Char(c),
            Key::AnyChar => !ctrl && !alt && matches!(event.code, KeyCode::Char(_)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct KeyBinding {
    pub mode: InputMode,
    pub keys: &'static [Key],
    /// For [`Key::AnyChar`] bindings the typed character replaces the placeholder in `FilterInput`.
    pub action: Action,
    pub description: &'static str,
}

const fn bind(mode: InputMode, keys: &'static [Key], action: Action, description: &'static str) -> KeyBinding {
    KeyBinding {
        mode,
        keys,
        action,
        description,
    }
}

use InputMode::{Details, Dialog, Filter, Help, Normal, TooSmall};

/// Every key the TUI understands. Earlier entries win within a mode.
pub const KEY_TABLE: &[KeyBinding] = &[
    bind(Normal, &[Key::Code(KeyCode::Up), Key::char('k')], Action::Up, "move up"),
    bind(
        Normal,
        &[Key::Code(KeyCode::Down), Key::char('j')],
        Action::Down,
        "move down",
    ),
    bind(Normal, &[Key::Code(KeyCode::PageUp)], Action::PageUp, "page up"),
    bind(Normal, &[Key::Code(KeyCode::PageDown)], Action::PageDown, "page down"),
    bind(
        Normal,
        &[Key::char('g'), Key::Code(KeyCode::Home)],
        Action::Top,
        "go to the top",
    ),
    bind(
        Normal,
        &[Key::char('G'), Key::Code(KeyCode::End)],
        Action::Bottom,
        "go to the bottom",
    ),
    bind(
        Normal,
        &[Key::Code(KeyCode::Tab), Key::Code(KeyCode::Right), Key::char('l')],
        Action::NextPane,
        "next pane",
    ),
    bind(
        Normal,
        &[Key::Code(KeyCode::BackTab), Key::Code(KeyCode::Left), Key::char('h')],
        Action::PrevPane,
        "previous pane",
    ),
    bind(
        Normal,
        &[Key::Code(KeyCode::Enter)],
        Action::Details,
        "details of the game or peer",
    ),
    bind(Normal, &[Key::char('d')], Action::Download, "download (+ install)"),
    bind(
        Normal,
        &[Key::char('s')],
        Action::StreamInstall,
        "stream-install (low disk)",
    ),
    bind(Normal, &[Key::char('u')], Action::Update, "update to latest version"),
    bind(Normal, &[Key::char('i')], Action::Install, "install a downloaded game"),
    bind(Normal, &[Key::char('x')], Action::Uninstall, "uninstall, keep archives"),
    bind(Normal, &[Key::char('v')], Action::Verify, "verify, offer a repair"),
    bind(
        Normal,
        &[Key::char('r')],
        Action::RemoveDownloaded,
        "delete downloaded files",
    ),
    bind(Normal, &[Key::char('c')], Action::Cancel, "cancel download/install"),
    bind(Normal, &[Key::char('R')], Action::Retry, "retry what failed"),
    bind(Normal, &[Key::char('C')], Action::ClearEnded, "clear ended transfers"),
    bind(
        Normal,
        &[Key::char('p')],
        Action::PauseResume,
        "pause / resume a download",
    ),
    bind(
        Normal,
        &[Key::char('K')],
        Action::Queue(QueueMove::Up),
        "move up in the queue",
    ),
    bind(
        Normal,
        &[Key::char('J')],
        Action::Queue(QueueMove::Down),
        "move down in the queue",
    ),
    bind(
        Normal,
        &[Key::char('N')],
        Action::Queue(QueueMove::Next),
        "download this one next",
    ),
    bind(Normal, &[Key::char('o')], Action::CycleSort, "sort: name, state, size"),
    bind(Normal, &[Key::char('/')], Action::StartFilter, "filter games by name"),
    bind(Normal, &[Key::char('?')], Action::ToggleHelp, "show this help"),
    bind(
        Normal,
        &[Key::Code(KeyCode::Esc)],
        Action::Back,
        "clear filter or message",
    ),
    bind(
        Normal,
        &[Key::char('q'), Key::Ctrl('c')],
        Action::Quit,
        "quit (asks while busy)",
    ),
    bind(Normal, &[Key::char('Q')], Action::StopRuntime, "stop an attached serve"),
    bind(
        Filter,
        &[Key::Code(KeyCode::Enter)],
        Action::FilterAccept,
        "keep the filter",
    ),
    bind(
        Filter,
        &[Key::Code(KeyCode::Esc)],
        Action::FilterClear,
        "clear the filter",
    ),
    bind(
        Filter,
        &[Key::Code(KeyCode::Backspace)],
        Action::FilterBackspace,
        "delete a letter",
    ),
    bind(Filter, &[Key::Ctrl('c')], Action::Quit, "quit"),
    bind(Filter, &[Key::AnyChar], Action::FilterInput(' '), "type to filter"),
    bind(
        Dialog,
        // Not Enter: Enter is a key of the panes, and a dialog that pops up under a
        // repeated Enter must not be answered by it.
        &[Key::char('y')],
        Action::Confirm,
        "yes, do it",
    ),
    bind(
        Dialog,
        &[Key::char('n'), Key::Code(KeyCode::Esc)],
        Action::Back,
        "no, keep it",
    ),
    bind(Dialog, &[Key::Ctrl('c')], Action::Quit, "quit"),
    bind(
        Help,
        &[Key::char('?'), Key::Code(KeyCode::Esc), Key::char('q')],
        Action::Back,
        "close the help",
    ),
    bind(Help, &[Key::Code(KeyCode::Up), Key::char('k')], Action::Up, "scroll up"),
    bind(
        Help,
        &[Key::Code(KeyCode::Down), Key::char('j')],
        Action::Down,
        "scroll down",
    ),
    bind(Help, &[Key::Code(KeyCode::PageUp)], Action::PageUp, "page up"),
    bind(Help, &[Key::Code(KeyCode::PageDown)], Action::PageDown, "page down"),
    bind(Help, &[Key::Ctrl('c')], Action::Quit, "quit"),
    bind(
        Details,
        &[Key::Code(KeyCode::Esc), Key::Code(KeyCode::Enter), Key::char('q')],
        Action::Back,
        "close the details",
    ),
    bind(
        Details,
        &[Key::Code(KeyCode::Up), Key::char('k')],
        Action::Up,
        "scroll up",
    ),
    bind(
        Details,
        &[Key::Code(KeyCode::Down), Key::char('j')],
        Action::Down,
        "scroll down",
    ),
    bind(Details, &[Key::Code(KeyCode::PageUp)], Action::PageUp, "page up"),
    bind(Details, &[Key::Code(KeyCode::PageDown)], Action::PageDown, "page down"),
    bind(Details, &[Key::Ctrl('c')], Action::Quit, "quit"),
    bind(TooSmall, &[Key::char('q'), Key::Ctrl('c')], Action::Quit, "quit"),
];

/// The action `event` stands for in `mode`, if any. Key releases are ignored.
pub fn action_for(mode: InputMode, event: &KeyEvent) -> Option<Action> {
    if event.kind == KeyEventKind::Release {
        return None;
    }
    let binding = KEY_TABLE
        .iter()
        .filter(|binding| binding.mode == mode)
        .find(|binding| binding.keys.iter().any(|key| key.matches(event)))?;
    match (binding.action, event.code) {
        (Action::FilterInput(_), KeyCode::Char(typed)) => Some(Action::FilterInput(typed)),
        (action, _) => Some(action),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn vim_keys_arrows_and_shifted_characters_map_to_actions() {
        let none = KeyModifiers::NONE;
        assert_eq!(action_for(Normal, &press(KeyCode::Char('j'), none)), Some(Action::Down));
        assert_eq!(action_for(Normal, &press(KeyCode::Down, none)), Some(Action::Down));
        assert_eq!(
            action_for(Normal, &press(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Bottom)
        );
        assert_eq!(
            action_for(Normal, &press(KeyCode::BackTab, KeyModifiers::SHIFT)),
            Some(Action::PrevPane)
        );
        assert_eq!(action_for(Normal, &press(KeyCode::Enter, none)), Some(Action::Details));
        assert_eq!(
            action_for(Normal, &press(KeyCode::Char('d'), none)),
            Some(Action::Download)
        );
        assert_eq!(
            action_for(Normal, &press(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(
            action_for(Normal, &press(KeyCode::Char('c'), none)),
            Some(Action::Cancel)
        );
        assert_eq!(action_for(Normal, &press(KeyCode::Char('z'), none)), None);
    }

    #[test]
    fn typing_a_filter_captures_letters_that_are_commands_elsewhere() {
        let none = KeyModifiers::NONE;
        assert_eq!(
            action_for(Filter, &press(KeyCode::Char('q'), none)),
            Some(Action::FilterInput('q'))
        );
        assert_eq!(
            action_for(Filter, &press(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(
            action_for(Filter, &press(KeyCode::Esc, none)),
            Some(Action::FilterClear)
        );
        assert_eq!(
            action_for(Dialog, &press(KeyCode::Char('y'), none)),
            Some(Action::Confirm)
        );
        assert_eq!(action_for(Dialog, &press(KeyCode::Char('d'), none)), None);
    }

    #[test]
    fn releases_are_ignored() {
        let mut event = press(KeyCode::Char('q'), KeyModifiers::NONE);
        event.kind = KeyEventKind::Release;
        assert_eq!(action_for(Normal, &event), None);
    }

    #[test]
    fn no_key_is_bound_twice_in_one_mode() {
        for (index, binding) in KEY_TABLE.iter().enumerate() {
            for key in binding.keys {
                let again = KEY_TABLE[index + 1..]
                    .iter()
                    .filter(|other| other.mode == binding.mode)
                    .any(|other| other.keys.contains(key) && *key != Key::AnyChar);
                assert!(!again, "{key:?} is bound twice in {:?}", binding.mode);
            }
        }
    }
}
