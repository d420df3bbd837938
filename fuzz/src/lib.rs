#![forbid(unsafe_code)]
//! Shared pieces of the fuzz targets: an input splitter and the plain
//! reference implementations the differential targets compare against.
//!
//! The references are written from the specification, deliberately without
//! reusing any helper of the code under test, so that a bug in one is not
//! silently shared by the other.

pub mod reference;

/// Reads structured values off the front of a fuzz input. Running out of
/// bytes yields empty values, so every input is usable.
#[derive(Debug)]
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    /// One byte, 0 when the input is exhausted.
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    /// A chunk whose length is given by the next byte.
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte());
        self.take(n)
    }

    /// A chunk as text (lossy, so that every input yields a string).
    pub fn text(&mut self) -> String {
        String::from_utf8_lossy(self.chunk()).into_owned()
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.0.len())
    }
}
