//! Pure tile geometry for the composite canvas.
//!
//! Each tile is a cell; the compositor pad scales the picture into it keeping the aspect ratio
//! (`sizing-policy=keep-aspect-ratio`), so odd input sizes letterbox instead of stretching.

use crate::spec::Layout;

/// A rectangle on the canvas, in pixels (even sizes, so I420 chroma planes line up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: i32,
    /// Height.
    pub height: i32,
}

fn even(v: i32) -> i32 {
    v & !1
}

/// Tiles for `count` inputs on a `width` x `height` canvas. `speaker` is the index of the active
/// speaker's tile (speaker layout only; `None` means the first tile).
pub fn tiles(
    layout: Layout,
    count: usize,
    width: i32,
    height: i32,
    speaker: Option<usize>,
) -> Vec<Rect> {
    match layout {
        Layout::Grid => grid(count, width, height),
        Layout::Speaker => speaker_layout(count, width, height, speaker.unwrap_or(0)),
    }
}

/// A near-square grid; a short last row is centred.
fn grid(count: usize, width: i32, height: i32) -> Vec<Rect> {
    if count == 0 {
        return Vec::new();
    }
    let cols = (count as f64).sqrt().ceil() as usize;
    let rows = count.div_ceil(cols);
    let cell_w = even(width / cols as i32);
    let cell_h = even(height / rows as i32);
    (0..count)
        .map(|i| {
            let (row, col) = (i / cols, i % cols);
            let in_row = if row == rows - 1 {
                count - row * cols
            } else {
                cols
            };
            let offset = (width - cell_w * in_row as i32) / 2;
            Rect {
                x: even(offset + col as i32 * cell_w),
                y: row as i32 * cell_h,
                width: cell_w,
                height: cell_h,
            }
        })
        .collect()
}

/// The speaker gets the top three quarters; the others share a centred strip below.
fn speaker_layout(count: usize, width: i32, height: i32, speaker: usize) -> Vec<Rect> {
    if count <= 1 {
        return grid(count, width, height);
    }
    let main_h = even(height * 3 / 4);
    let strip_h = even(height - main_h);
    let others = count as i32 - 1;
    let cell_w = even((width / others).min(strip_h * 16 / 9));
    let offset = (width - cell_w * others) / 2;
    let mut strip = (0..others).map(|i| Rect {
        x: even(offset + i * cell_w),
        y: main_h,
        width: cell_w,
        height: strip_h,
    });
    let main = Rect {
        x: 0,
        y: 0,
        width: even(width),
        height: main_h,
    };
    let speaker = speaker.min(count - 1);
    (0..count)
        .map(|i| {
            if i == speaker {
                main
            } else {
                strip.next().unwrap_or(main)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inside(r: &Rect, w: i32, h: i32) -> bool {
        r.x >= 0 && r.y >= 0 && r.x + r.width <= w && r.y + r.height <= h
    }

    #[test]
    fn grid_of_one_fills_the_canvas() {
        assert_eq!(
            tiles(Layout::Grid, 1, 854, 480, None),
            vec![Rect {
                x: 0,
                y: 0,
                width: 854,
                height: 480
            }]
        );
    }

    #[test]
    fn grid_of_three_is_two_by_two_with_centred_last_row() {
        let t = tiles(Layout::Grid, 3, 1280, 720, None);
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[0],
            Rect {
                x: 0,
                y: 0,
                width: 640,
                height: 360
            }
        );
        assert_eq!(
            t[2],
            Rect {
                x: 320,
                y: 360,
                width: 640,
                height: 360
            }
        );
        assert!(t.iter().all(|r| inside(r, 1280, 720)));
    }

    #[test]
    fn grid_reflows_without_overlap() {
        for n in 1..=16 {
            let t = tiles(Layout::Grid, n, 854, 480, None);
            assert_eq!(t.len(), n);
            for (i, a) in t.iter().enumerate() {
                assert!(inside(a, 854, 480), "{n}: {a:?}");
                for b in &t[i + 1..] {
                    let overlap = a.x < b.x + b.width
                        && b.x < a.x + a.width
                        && a.y < b.y + b.height
                        && b.y < a.y + a.height;
                    assert!(!overlap, "{n}: {a:?} overlaps {b:?}");
                }
            }
        }
    }

    #[test]
    fn speaker_is_large_and_others_form_a_strip() {
        let t = tiles(Layout::Speaker, 3, 1280, 720, Some(2));
        assert_eq!(
            t[2],
            Rect {
                x: 0,
                y: 0,
                width: 1280,
                height: 540
            }
        );
        assert_eq!(t[0].y, 540);
        assert_eq!(t[1].y, 540);
        assert!(t[0].x < t[1].x);
        assert!(t.iter().all(|r| inside(r, 1280, 720)));
    }

    #[test]
    fn empty_layouts_are_empty() {
        assert!(tiles(Layout::Grid, 0, 854, 480, None).is_empty());
        assert!(tiles(Layout::Speaker, 0, 854, 480, Some(3)).is_empty());
    }
}
