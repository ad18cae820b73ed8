//! Reading a binary layout front to back, for the strict decoders of the map proof
//! ([`crate::directory::proof`]) and the binary lookup answer ([`crate::api`]): each maps
//! [`EndsEarly`] to its own error.

/// The bytes still to read.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

/// The bytes end before the layout does.
pub(crate) struct EndsEarly;

impl<'a> Reader<'a> {
    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], EndsEarly> {
        if self.0.len() < n {
            return Err(EndsEarly);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// The next `N` bytes, as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], EndsEarly> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}
