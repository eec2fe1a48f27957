//! Photos in: bytes → an upright RGB8 image. The size is checked against a pixel budget before any
//! pixel is decoded, and the EXIF orientation is applied, so the box a person draws on the picture
//! they see is the box the model gets.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage};

/// Default pixel budget: 100 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// Why a photo could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("the file is empty")]
    Empty,
    #[error("not an image in a supported format (PNG, JPEG, WebP, GIF or BMP)")]
    UnknownFormat,
    #[error("the image is {width}x{height} = {:.1} megapixels, over the limit of {:.1} megapixels", megapixels(*width, *height), *max_pixels as f64 / 1e6)]
    TooLarge { width: u32, height: u32, max_pixels: u64 },
    #[error("the image has no pixels ({width}x{height})")]
    NoPixels { width: u32, height: u32 },
    #[error("the image data is damaged or truncated: {0}")]
    Corrupt(String),
    #[error("this image kind is not supported: {0}")]
    Unsupported(String),
}

fn megapixels(width: u32, height: u32) -> f64 {
    f64::from(width) * f64::from(height) / 1e6
}

impl From<ImageError> for PhotoError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Unsupported(u) => PhotoError::Unsupported(u.to_string()),
            ImageError::Limits(l) => PhotoError::Corrupt(format!("it declares more data than its size allows ({l})")),
            other => PhotoError::Corrupt(other.to_string()),
        }
    }
}

/// Decodes a photo, refusing it before decoding when it has more than `max_pixels` pixels, and
/// turns it upright by its EXIF orientation. Alpha is dropped and gray is expanded to RGB, as PIL's
/// `convert("RGB")` does.
pub fn decode_photo(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, PhotoError> {
    if bytes.is_empty() {
        return Err(PhotoError::Empty);
    }
    let mut reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| PhotoError::Corrupt(e.to_string()))?;
    if reader.format().is_none() {
        return Err(PhotoError::UnknownFormat);
    }
    // The decoder may hold the image in up to 16-bit RGBA, plus one RGB8 copy.
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(11).max(1 << 26));
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(PhotoError::NoPixels { width, height });
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(PhotoError::TooLarge { width, height, max_pixels });
    }
    // A damaged EXIF block should not cost the person their photo: show it as stored.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 9]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_png() {
        let img = decode_photo(&png(7, 5), DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(img.dimensions(), (7, 5));
        assert_eq!(img.get_pixel(3, 2).0, [3, 2, 9]);
    }

    #[test]
    fn refuses_bad_files() {
        assert!(matches!(decode_photo(&[], DEFAULT_MAX_PIXELS), Err(PhotoError::Empty)));
        assert!(matches!(decode_photo(b"hello, world", DEFAULT_MAX_PIXELS), Err(PhotoError::UnknownFormat)));
        let p = png(40, 30);
        assert!(matches!(decode_photo(&p[..p.len() / 2], DEFAULT_MAX_PIXELS), Err(PhotoError::Corrupt(_))));
        let e = decode_photo(&p, 1000).unwrap_err();
        assert!(matches!(e, PhotoError::TooLarge { width: 40, height: 30, max_pixels: 1000 }));
        assert!(e.to_string().starts_with("the image is 40x30 = 0.0 megapixels, over the limit"), "{e}");
    }
}
