//! The log pane: the runtime's lifecycle events as timestamped lines, newest at the
//! bottom; a line too long for the pane wraps, indented under its text, so every message
//! can be read whole.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::pane_block;
use crate::ui::app::{App, Level, LogLine, Pane};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let lines = app.log_lines();
    let (columns, height) = (
        usize::from(area.width.saturating_sub(2)),
        usize::from(area.height.saturating_sub(2)),
    );
    let scroll = app.log_scroll();
    let detail = if scroll > 0 {
        format!("{scroll} newer below · G follows")
    } else {
        String::new()
    };
    let block = pane_block(app, Pane::Log, detail);
    // From the bottom line up until the pane is full; the top line may show only its end.
    let end = lines.len() - scroll.min(lines.len());
    let mut rows: Vec<Line> = Vec::new();
    for line in lines.range(..end).rev() {
        let mut wrapped = styled_rows(line, columns);
        while let Some(row) = wrapped.pop() {
            if rows.len() == height {
                break;
            }
            rows.push(row);
        }
        if rows.len() == height {
            break;
        }
    }
    rows.reverse();
    frame.render_widget(Paragraph::new(rows).block(block), area);
}

/// One log line as rows: the time, then the text, wrapped and indented under itself.
fn styled_rows(line: &LogLine, columns: usize) -> Vec<Line<'static>> {
    let style = match line.level {
        Level::Info => Style::new(),
        Level::Warn => Style::new().fg(Color::Yellow),
        Level::Error => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
    };
    let indent = " ".repeat(line.time.chars().count() + 1);
    line.rows(columns)
        .into_iter()
        .enumerate()
        .map(|(index, text)| {
            let lead = if index == 0 {
                Span::styled(format!("{} ", line.time), Style::new().fg(Color::DarkGray))
            } else {
                Span::raw(indent.clone())
            };
            Line::from(vec![lead, Span::styled(text, style)])
        })
        .collect()
}
