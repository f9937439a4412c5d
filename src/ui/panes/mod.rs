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

/// The rows of a list that `visible` rows show: from the first one, so that the selected
/// row is on screen (at the bottom when it is past the first page).
pub fn first_shown(selected: Option<usize>, visible: usize) -> usize {
    selected.unwrap_or(0).saturating_sub(visible.max(1) - 1)
}

/// `7-12 of 34` for the bottom border, when not every row fits.
pub fn position_title<'a>(first: usize, visible: usize, total: usize) -> Option<Line<'a>> {
    if total <= visible {
        return None;
    }
    let last = (first + visible).min(total);
    Some(Line::from(format!(" {}-{last} of {total} ", first + 1)).right_aligned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_shows_which_rows_are_on_screen_only_when_some_are_not() {
        assert_eq!(first_shown(None, 6), 0);
        assert_eq!(first_shown(Some(5), 6), 0);
        assert_eq!(first_shown(Some(11), 6), 6);
        assert_eq!(first_shown(Some(3), 0), 3);
        let text = |line: Option<Line>| line.map(|line| line.to_string());
        assert_eq!(text(position_title(6, 6, 34)).as_deref(), Some(" 7-12 of 34 "));
        assert_eq!(text(position_title(30, 6, 34)).as_deref(), Some(" 31-34 of 34 "));
        assert_eq!(text(position_title(0, 6, 6)), None);
    }
}
