//! The log pane: the runtime's lifecycle events as timestamped lines, newest at the bottom.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::pane_block;
use crate::ui::app::{App, Level, Pane};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let lines = app.log_lines();
    let height = usize::from(area.height.saturating_sub(2));
    let scroll = app.log_scroll().min(lines.len().saturating_sub(1));
    let end = lines.len() - scroll;
    let start = end.saturating_sub(height);
    let detail = if scroll > 0 {
        format!("{scroll} newer below · G follows")
    } else {
        String::new()
    };
    let block = pane_block(app, Pane::Log, detail);
    let text: Vec<Line> = lines
        .range(start..end)
        .map(|line| {
            let style = match line.level {
                Level::Info => Style::new(),
                Level::Warn => Style::new().fg(Color::Yellow),
                Level::Error => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            };
            Line::from(vec![
                Span::styled(format!("{} ", line.time), Style::new().fg(Color::DarkGray)),
                Span::styled(line.text.clone(), style),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(text).block(block), area);
}
