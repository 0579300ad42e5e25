//! Small, valid binary payloads (base64) served by the fixture.

/// A 1x1 RGBA PNG image.
pub const PNG_1X1_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==";

/// MIME type of [`PNG_1X1_BASE64`].
pub const PNG_MIME: &str = "image/png";

/// A 16-sample, 8 kHz, mono, 8-bit PCM WAV file of silence.
pub const WAV_SILENCE_BASE64: &str =
    "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YRAAAACAgICAgICAgICAgICAgICA";

/// MIME type of [`WAV_SILENCE_BASE64`].
pub const WAV_MIME: &str = "audio/wav";
