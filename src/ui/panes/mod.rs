//! The four panes. Each is a pure `render(frame, area, app)`.

pub mod library;
pub mod log;
pub mod peers;
pub mod transfers;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType};

use super::app::{App, Pane};

/// A pane's frame. The focused one has double lines, a bold title and a cyan border, so it
/// stands out without colour too.
pub fn pane_block<'a>(app: &App, pane: Pane, detail: String) -> Block<'a> {
    let focused = app.focus() == pane;
    let (border, border_type, title) = if focused {
        let border = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
        (border, BorderType::Double, border)
    } else {
        (Style::new(), BorderType::Plain, Style::new())
    };
    let mut title = vec![Span::styled(format!(" {} ", pane.title()), title)];
    if !detail.is_empty() {
        title.push(Span::raw(format!("{detail} ")));
    }
    Block::bordered()
        .border_type(border_type)
        .border_style(border)
        .title(Line::from(title))
}

/// The highlight of the selected row: reverse video works on every palette.
pub fn selected_style(app: &App, pane: Pane) -> Style {
    if app.focus() == pane {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    }
}
