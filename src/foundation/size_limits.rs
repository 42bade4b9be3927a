//! The backend's limits for an explicit `WxH` size, and the valid size nearest to a refused one.
//!
//! `controls.rs` words the refusals (`check_pixel_size`); this file only knows the numbers, so
//! the "nearest valid size" hint can search them without building error texts.

/// Limits of the `WxH` form (gpt-image-2's documented bounds).
pub(crate) const MAX_SIDE: u32 = 3840;
pub(crate) const MAX_PIXELS: u64 = 3840 * 2160;
pub(crate) const MAX_RATIO: u64 = 3;

/// Whether the backend takes `w`x`h`: sides multiples of 16 and above 0, the longer at most
/// [`MAX_SIDE`], at most 3:1, at most [`MAX_PIXELS`] in all.
pub(crate) fn fits(w: u32, h: u32) -> bool {
    let (long, short) = (u64::from(w.max(h)), u64::from(w.min(h)));
    w > 0
        && h > 0
        && w.is_multiple_of(16)
        && h.is_multiple_of(16)
        && long <= u64::from(MAX_SIDE)
        && long <= short * MAX_RATIO
        && u64::from(w) * u64::from(h) <= MAX_PIXELS
}

/// The valid size nearest (by distance in pixels) to a refused `w`x`h`; `None` when it fits.
///
/// The answer lies near one of two points: the request with each side clamped to the limits
/// (right for a side too long or not a multiple of 16), or the request scaled into the limits
/// with its ratio held to 3:1 (right for too many pixels or too narrow). The multiples of 16
/// around both are tried; the larger wins a tie, so 1000x1000 becomes 1008x1008.
pub(crate) fn nearest_size(w: u32, h: u32) -> Option<(u32, u32)> {
    if fits(w, h) {
        return None;
    }
    let (asked_w, asked_h) = (f64::from(w), f64::from(h));
    let clamp = |t: f64| t.clamp(16.0, f64::from(MAX_SIDE));
    let mut points = vec![(clamp(asked_w), clamp(asked_h))];
    let (mut tw, mut th) = (asked_w.max(1.0), asked_h.max(1.0));
    let ratio = MAX_RATIO as f64;
    if tw > th * ratio {
        th = tw / ratio;
    } else if th > tw * ratio {
        tw = th / ratio;
    }
    let scale = (f64::from(MAX_SIDE) / tw.max(th))
        .min((MAX_PIXELS as f64 / (tw * th)).sqrt())
        .min(1.0);
    points.push((tw * scale, th * scale));
    let around = |t: f64| {
        let base = (t / 16.0).floor() as i64 * 16;
        (-2..=3).map(move |step| base + 16 * step)
    };
    let mut best: Option<(f64, (u32, u32))> = None;
    for (pw, ph) in points {
        for cw in around(pw) {
            for ch in around(ph) {
                let (Ok(cw), Ok(ch)) = (u32::try_from(cw), u32::try_from(ch)) else {
                    continue;
                };
                if !fits(cw, ch) {
                    continue;
                }
                let distance =
                    (f64::from(cw) - asked_w).powi(2) + (f64::from(ch) - asked_h).powi(2);
                let better = best.is_none_or(|(d, (bw, bh))| {
                    distance < d
                        || (distance == d
                            && u64::from(cw) * u64::from(ch) > u64::from(bw) * u64::from(bh))
                });
                if better {
                    best = Some((distance, (cw, ch)));
                }
            }
        }
    }
    best.map(|(_, size)| size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_valid_size() {
        assert_eq!(nearest_size(1000, 1000), Some((1008, 1008)));
        assert_eq!(nearest_size(1024, 1024), None);
        assert_eq!(nearest_size(4096, 2048), Some((3840, 2048)));
        assert_eq!(nearest_size(3840, 2176), Some((3840, 2160)));
        assert_eq!(nearest_size(3200, 1056), Some((3200, 1072)));
        assert_eq!(nearest_size(0, 1024), Some((336, 1008)));
        assert_eq!(nearest_size(u32::MAX, 1), Some((3840, 1280)));
        for (w, h) in [
            (1, 1),
            (17, 9000),
            (5000, 5000),
            (1023, 1025),
            (3841, 3841),
            (0, 0),
        ] {
            let (a, b) = nearest_size(w, h).unwrap_or_else(|| panic!("{w}x{h}"));
            assert!(fits(a, b), "{w}x{h} -> {a}x{b}");
        }
    }
}
