//! The wait-time chart: a histogram of a queue's recent claim waits, drawn
//! as SVG on the server (no script, no image request; colours are
//! presentation attributes, so the page's CSP needs no inline style).

use maud::{html, Markup};

use super::duration;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 10.0;
/// Bars at most; fewer when there are fewer distinct waits.
const BUCKETS: usize = 12;

/// How many waits fall in each of `buckets` equal spans from 0 to the
/// longest wait (ms), with the span's width.
pub fn histogram(waits_ms: &[i64], buckets: usize) -> (Vec<usize>, f64) {
    let longest = waits_ms.iter().copied().max().unwrap_or(0).max(1) as f64;
    let width = longest / buckets as f64;
    let mut counts = vec![0; buckets];
    for &wait in waits_ms {
        let index = ((wait.max(0) as f64 / width) as usize).min(buckets - 1);
        counts[index] += 1;
    }
    (counts, width)
}

/// The chart, labelled for screen readers; a sentence when there are no
/// waits to draw.
pub fn wait_chart(queue: &str, waits_ms: &[i64]) -> Markup {
    if waits_ms.is_empty() {
        return html! { p { "No job of this queue was claimed in the last 7 days." } };
    }
    let (counts, span_ms) = histogram(waits_ms, BUCKETS);
    let most = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let plot_w = WIDTH - LEFT - 10.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let bar_w = plot_w / BUCKETS as f64;
    let label = format!(
        "Histogram of {} claim waits on queue {queue}, from 0 to {}",
        waits_ms.len(),
        duration(span_ms * BUCKETS as f64 / 1000.0)
    );
    html! {
        figure {
            svg.chart role="img" aria-label=(label) viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width=(WIDTH) height=(HEIGHT) xmlns="http://www.w3.org/2000/svg" {
                title { (label) }
                line x1=(LEFT) y1=(TOP + plot_h) x2=(LEFT + plot_w) y2=(TOP + plot_h) stroke="#4a4a4a" {}
                line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(TOP + plot_h) stroke="#4a4a4a" {}
                text x=(LEFT - 6.0) y=(TOP + 10.0) text-anchor="end" font-size="12" fill="#1b1b1b" { (most) }
                text x=(LEFT - 6.0) y=(TOP + plot_h) text-anchor="end" font-size="12" fill="#1b1b1b" { "0" }
                @for (i, count) in counts.iter().enumerate() {
                    @let h = plot_h * *count as f64 / most;
                    @let x = LEFT + i as f64 * bar_w;
                    rect x=(format!("{:.1}", x + 1.0)) y=(format!("{:.1}", TOP + plot_h - h)) width=(format!("{:.1}", bar_w - 2.0)) height=(format!("{:.1}", h)) fill="#2f5f8a" {
                        title { (count) " jobs waited " (duration(span_ms * i as f64 / 1000.0)) " to " (duration(span_ms * (i + 1) as f64 / 1000.0)) }
                    }
                }
                text x=(LEFT) y=(HEIGHT - 20.0) font-size="12" fill="#1b1b1b" { "0" }
                text x=(LEFT + plot_w) y=(HEIGHT - 20.0) text-anchor="end" font-size="12" fill="#1b1b1b" { (duration(span_ms * BUCKETS as f64 / 1000.0)) }
                text x=(LEFT + plot_w / 2.0) y=(HEIGHT - 4.0) text-anchor="middle" font-size="12" fill="#1b1b1b" { "wait before the claim" }
            }
            figcaption.muted { "Jobs per wait span; the vertical axis counts jobs." }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wait_lands_in_one_bucket() {
        let (counts, width) = histogram(&[0, 500, 1000, 12_000], 12);
        assert_eq!(counts.iter().sum::<usize>(), 4);
        assert_eq!(width, 1000.0);
        assert_eq!(counts[0], 2);
        assert_eq!(counts[1], 1);
        assert_eq!(counts[11], 1, "the longest wait is in the last bar");
    }

    #[test]
    fn the_chart_is_escaped_svg() {
        let svg = wait_chart("<q>", &[1000, 2000]).into_string();
        assert!(svg.contains("<svg") && svg.contains("<rect"), "{svg}");
        assert!(svg.contains("&lt;q&gt;") && !svg.contains("<q>"), "{svg}");
    }
}
