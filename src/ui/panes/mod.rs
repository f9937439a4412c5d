//! The four panes. Each is a pure `render(frame, area, app)`.

pub mod library;
pub mod log;
pub mod peers;
pub mod transfers;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Block;

use super::app::{App, Pane};

/// A pane's frame: the focused one has a bold cyan border, readable on 16 colours.
pub fn pane_block<'a>(app: &App, pane: Pane, detail: String) -> Block<'a> {
    let focused = app.focus() == pane;
    let border = if focused {
        Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    let mut title = vec![Span::styled(
        format!(" {} ", pane.title()),
        border.add_modifier(Modifier::BOLD),
    )];
    if !detail.is_empty() {
        title.push(Span::raw(format!("{detail} ")));
    }
    Block::bordered().border_style(border).title(Line::from(title))
}

/// The highlight of the selected row: reverse video works on every palette.
pub fn selected_style(app: &App, pane: Pane) -> Style {
    if app.focus() == pane {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    }
}
