//! `--plot out.png`: throughput vs threads, one panel per (suite, workload), log-scale
//! Mops/s, this crate's types drawn thick. Pure Rust: plotters' bitmap backend draws into a
//! pixel buffer and the `png` crate encodes it, so no system library is needed. Text goes
//! through ab_glyph with a TrueType font found at run time (`GILFREE_PLOT_FONT`, then the
//! usual system font folders); with no font (or `GILFREE_PLOT_FONT=none`) the chart is drawn
//! without text and the legend order is printed on stderr.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::Group;

const PANEL_W: u32 = 990;
const PANEL_H: u32 = 440;
const LEGEND_W: u32 = 430;

/// Distinct colours; the limit (first contender of most groups) is black.
const PALETTE: [RGBColor; 14] = [
    RGBColor(0, 0, 0),
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
];

/// Registers a TrueType font for "sans-serif"; returns where it came from, or `None`.
fn load_font() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("GILFREE_PLOT_FONT") {
        if p == "none" {
            return None;
        }
        candidates.push(p.into());
    }
    for p in [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
        "/usr/share/fonts/noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        "/Library/Fonts/Arial.ttf",
        "/System/Library/Fonts/Supplemental/Arial.ttf",
        "C:\\Windows\\Fonts\\arial.ttf",
    ] {
        candidates.push(p.into());
    }
    // Any other .ttf under the usual folders, regular faces first.
    let mut found = Vec::new();
    for dir in [
        "/usr/share/fonts",
        "/usr/local/share/fonts",
        "/Library/Fonts",
    ] {
        walk(Path::new(dir), 0, &mut found);
    }
    found.sort_by_key(|p: &PathBuf| {
        let n = p.to_string_lossy().to_lowercase();
        (
            ["bold", "italic", "oblique", "mono", "light", "condensed"]
                .iter()
                .any(|w| n.contains(w)),
            n,
        )
    });
    candidates.extend(found);
    for p in candidates {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
            return Some(p);
        }
    }
    None
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > 4 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, depth + 1, out);
        } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("ttf")) {
            out.push(p);
        }
    }
}

type Err = Box<dyn std::error::Error>;

/// Draws every group as a panel into `path` (PNG).
pub fn plot(path: &Path, groups: &[&Group], title: &str) -> Result<(), Err> {
    static FONT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let font = FONT.get_or_init(load_font);
    match &font {
        Some(p) => eprintln!("plot: font {}", p.display()),
        None => eprintln!(
            "plot: no TrueType font found (set GILFREE_PLOT_FONT=/path/to/font.ttf); \
             drawing without text"
        ),
    }
    let text = font.is_some();
    let groups: Vec<&Group> = groups
        .iter()
        .copied()
        .filter(|g| !g.records.is_empty())
        .collect();
    if groups.is_empty() {
        return Err("nothing to plot".into());
    }
    let cols = if groups.len() == 1 { 1 } else { 2 };
    let rows = groups.len().div_ceil(cols);
    let head = if text { 44 } else { 0 };
    let (w, h) = (PANEL_W * cols as u32, PANEL_H * rows as u32 + head);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, body) = root.split_vertically(head);
        if text {
            top.draw(&Text::new(
                title.to_string(),
                (12, 10),
                ("sans-serif", 22).into_font().color(&BLACK),
            ))?;
        }
        let panels = body.split_evenly((rows, cols));
        for (area, g) in panels.iter().zip(&groups) {
            panel(area, g, text)?;
        }
        root.present()?;
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&buf)?;
    if !text {
        for g in &groups {
            let names: Vec<String> = g.contenders().into_iter().map(|(c, _)| c).collect();
            eprintln!(
                "plot: {} / {}: colours in order: {}",
                g.suite,
                g.workload,
                names.join(" | ")
            );
        }
    }
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    g: &Group,
    text: bool,
) -> Result<(), Err>
where
    DB::ErrorType: 'static,
{
    let threads = g.threads();
    let contenders = g.contenders();
    let (lo, hi) = g
        .records
        .iter()
        .map(|r| r.mops())
        .filter(|m| *m > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), m| (lo.min(m), hi.max(m)));
    // The y axis is log10(Mops/s) on a linear scale, labelled with the rates themselves
    // (plotters' log scale labels only powers of ten here).
    let (lo, hi) = if lo <= hi {
        (lo.log10() - 0.12, hi.log10() + 0.12)
    } else {
        (-1.0, 1.0)
    };
    let k = threads.len();
    let (chart_area, legend) = area.split_horizontally(PANEL_W - LEGEND_W);
    let mut builder = ChartBuilder::on(&chart_area);
    builder.margin(8);
    if text {
        builder
            .caption(format!("{} / {}", g.suite, g.workload), ("sans-serif", 20))
            .x_label_area_size(36)
            .y_label_area_size(58);
    }
    let mut chart = builder.build_cartesian_2d(-0.3f64..(k as f64 - 0.7), lo..hi)?;
    if text {
        let fmt_x = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 && (i as usize) < k {
                threads[i as usize].to_string()
            } else {
                String::new()
            }
        };
        let fmt_y = |y: &f64| crate::report::fmt_num(10f64.powf(*y));
        chart
            .configure_mesh()
            .x_labels(k.max(2) * 4 + 1)
            .x_label_formatter(&fmt_x)
            .y_labels(10)
            .y_label_formatter(&fmt_y)
            .disable_x_mesh()
            .light_line_style(WHITE)
            .y_desc("Mops/s (log)")
            .x_desc("threads")
            .label_style(("sans-serif", 14))
            .draw()?;
    } else {
        chart.configure_mesh().x_labels(0).y_labels(0).draw()?;
    }
    for (i, (c, ours)) in contenders.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let width = if *ours { 3 } else { 1 };
        let pts: Vec<(f64, f64)> = threads
            .iter()
            .enumerate()
            .filter_map(|(xi, t)| {
                g.records
                    .iter()
                    .find(|r| &r.contender == c && r.threads == *t)
                    .map(|r| (xi as f64, r.mops().log10().max(lo)))
            })
            .collect();
        chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))?;
        chart.draw_series(
            pts.iter()
                .map(|p| Circle::new(*p, if *ours { 4 } else { 3 }, color.filled())),
        )?;
        let y = 34 + i as i32 * 22;
        legend.draw(&PathElement::new(
            vec![(4, y), (34, y)],
            color.stroke_width(width),
        ))?;
        if text {
            legend.draw(&Text::new(
                c.clone(),
                (40, y - 8),
                ("sans-serif", 14).into_font().color(&BLACK),
            ))?;
        }
    }
    Ok(())
}
