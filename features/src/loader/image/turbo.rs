//! JPEG decoding with libjpeg-turbo's decoder (feature `libjpeg-turbo`): its SIMD Huffman
//! decoding, IDCT and colour conversion, and its scaled IDCT for 1/2, 1/4 and 1/8 size,
//! through the `mozjpeg` crate (mozjpeg is a libjpeg-turbo fork with the same decoder; the
//! C source is vendored and built with `cc`, the SIMD with `nasm`).
//!
//! libjpeg reports a fatal error by calling `error_exit`, which here unwinds out of the C
//! code (compiled with `-fexceptions`) with the library's message; [`decode_jpeg`] catches
//! the unwind and returns the message as an [`ImageError`]. Warnings that mean pixels were
//! made up (a truncated file, a corrupt entropy-coded segment) are raised the same way, so a
//! damaged JPEG is an error as with the pure-Rust decoders, never grey rows; other warnings
//! are logged. Each call has its own decompressor, so workers decode in parallel.

use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mozjpeg::{ColorSpace, Decompress};
use mozjpeg_sys::{
    jpeg_common_struct, jpeg_error_mgr, jpeg_std_error, JWRN_HIT_MARKER, JWRN_HUFF_BAD_CODE,
    JWRN_JPEG_EOF, JWRN_MUST_RESYNC, J_MESSAGE_CODE,
};

use super::{jpeg_error, DecodedImage, GrayImage, ImageError, Pixels, RgbImage};

/// libjpeg warnings after which the decoded pixels are partly invented.
const DATA_LOSS: [J_MESSAGE_CODE; 4] = [
    JWRN_JPEG_EOF,
    JWRN_HIT_MARKER,
    JWRN_HUFF_BAD_CODE,
    JWRN_MUST_RESYNC,
];

/// The formatted text of the message libjpeg just raised (`msg_code` and its parameters).
fn message(cinfo: &mut jpeg_common_struct) -> String {
    type Format = unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &[u8; 80]);
    type FormatInto = unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &mut [u8; 80]);
    let mut buffer = [0u8; 80];
    // SAFETY: `err` is the error manager `decode_jpeg` installed, alive for the whole
    // decompression. `format_message` writes at most JMSG_LENGTH_MAX (80) bytes into its
    // buffer, which the binding declares `&[u8; 80]`: it is called as taking `&mut`.
    unsafe {
        if let Some(format) = cinfo.err.as_ref().and_then(|err| err.format_message) {
            let format = std::mem::transmute::<Format, FormatInto>(format);
            format(cinfo, &mut buffer);
        }
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

/// A libjpeg message carried by the unwind from the C code to [`decode_jpeg`].
struct LibjpegError(String);

extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    let text = message(cinfo);
    // resume_unwind, not panic!: no panic hook (nothing printed), just the unwind.
    std::panic::resume_unwind(Box::new(LibjpegError(text)));
}

extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: c_int) {
    if level >= 0 {
        return; // trace messages
    }
    // SAFETY: as in `message`.
    let code = unsafe { cinfo.err.as_ref().map_or(-1, |err| err.msg_code) };
    let text = message(cinfo);
    if DATA_LOSS.contains(&code) {
        std::panic::resume_unwind(Box::new(LibjpegError(text)));
    }
    tracing::warn!("libjpeg: {text}");
}

/// An error manager that unwinds on fatal errors and on data-loss warnings.
fn error_manager() -> jpeg_error_mgr {
    // SAFETY: jpeg_error_mgr is a C struct of integers and nullable function pointers;
    // jpeg_std_error fills in every field.
    let mut err: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe {
        jpeg_std_error(&mut err);
    }
    err.error_exit = Some(error_exit);
    err.emit_message = Some(emit_message);
    err
}

/// Decodes a gray or colour (YCbCr/RGB) JPEG at `1 / d` of its size, `d = reduction(w, h)`
/// (1, 2, 4 or 8); `None` for CMYK and YCCK JPEGs, left to the pure-Rust decoders (which
/// convert them to RGB).
pub(super) fn decode_jpeg(
    bytes: &[u8],
    reduction: impl FnOnce((u32, u32)) -> u32,
) -> Result<Option<DecodedImage>, ImageError> {
    let decoded = catch_unwind(AssertUnwindSafe(|| decode_unwinding(bytes, reduction)));
    match decoded {
        Ok(result) => result,
        Err(payload) => Err(jpeg_error(match payload.downcast::<LibjpegError>() {
            Ok(err) => err.0,
            Err(other) => other
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| other.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "libjpeg decoder panicked".to_string()),
        })),
    }
}

/// [`decode_jpeg`]'s work; libjpeg's errors unwind out of it.
fn decode_unwinding(
    bytes: &[u8],
    reduction: impl FnOnce((u32, u32)) -> u32,
) -> Result<Option<DecodedImage>, ImageError> {
    let io = |e: std::io::Error| jpeg_error(e.to_string());
    let mut decompress = Decompress::with_err(error_manager())
        .from_mem(bytes)
        .map_err(io)?;
    let gray = match decompress.color_space() {
        ColorSpace::JCS_GRAYSCALE => true,
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => return Ok(None),
        _ => false,
    };
    let (w, h) = decompress.size();
    // JPEG sides are at most 65,535.
    let dimensions = (
        u32::try_from(w).unwrap_or(u32::MAX),
        u32::try_from(h).unwrap_or(u32::MAX),
    );
    super::check_jpeg_size(dimensions, if gray { 1 } else { 3 })?;
    let d = reduction(dimensions);
    // libjpeg scales by scale_num / 8.
    decompress.scale(match d {
        8 => 1,
        4 => 2,
        2 => 4,
        _ => 8,
    });
    let mut started = if gray {
        decompress.grayscale()
    } else {
        decompress.rgb()
    }
    .map_err(io)?;
    let (sw, sh) = (started.width(), started.height());
    let data: Vec<u8> = started.read_scanlines().map_err(io)?;
    started.finish().map_err(io)?;
    let (sw, sh) = (
        u32::try_from(sw).unwrap_or(u32::MAX),
        u32::try_from(sh).unwrap_or(u32::MAX),
    );
    let len = data.len();
    let pixels = if gray {
        GrayImage::from_raw(sw, sh, data).map(Pixels::Gray8)
    } else {
        RgbImage::from_raw(sw, sh, data).map(Pixels::Rgb8)
    }
    .ok_or_else(|| jpeg_error(format!("libjpeg decoded {len} bytes for a {sw}x{sh} image")))?;
    Ok(Some(DecodedImage { pixels, dimensions }))
}
