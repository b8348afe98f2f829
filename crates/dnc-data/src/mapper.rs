//! [`Mapper`]: the per-item transform (decoding is done; augmentation, normalisation) that the
//! loader runs on its worker threads.

use crate::DataError;

/// Where an item is being loaded: enough to derive its random stream deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemContext {
    /// The epoch being loaded.
    pub epoch: u64,
    /// The item's index in the dataset being loaded.
    pub index: usize,
    /// The item's index in the dataset that one was cut from ([`Dataset::source_index`](crate::Dataset::source_index)).
    pub source_index: usize,
}

/// A per-item transform, run on the loader's worker threads.
///
/// A mapper that draws random numbers must take them from
/// `dnc_core::SeededRng::derive(seed, &[ctx.epoch, ctx.index as u64, ...])`, never from shared
/// state, so that its output does not depend on the number of threads or on their timing.
pub trait Mapper<In>: Send + Sync {
    /// What one item becomes.
    type Output: Send;

    /// Transforms one item.
    fn map(&self, item: In, ctx: ItemContext) -> Result<Self::Output, DataError>;

    /// The smallest width and height of an image of `width × height` pixels (after its EXIF
    /// orientation) that this mapper needs for item `ctx`: a dataset may decode a smaller image
    /// of the same aspect ratio, at least this large, and [`map`](Self::map) gets that one.
    /// Must be deterministic in `ctx`. By default the whole image.
    fn decode_size(&self, ctx: ItemContext, width: u32, height: u32) -> (u32, u32) {
        let _ = ctx;
        (width, height)
    }
}

/// Any thread-safe closure `Fn(In, ItemContext) -> Result<Out, DataError>` is a mapper.
impl<In, Out, F> Mapper<In> for F
where
    F: Fn(In, ItemContext) -> Result<Out, DataError> + Send + Sync,
    Out: Send,
{
    type Output = Out;

    fn map(&self, item: In, ctx: ItemContext) -> Result<Out, DataError> {
        self(item, ctx)
    }
}

/// The mapper that passes items through unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Identity;

impl<In: Send> Mapper<In> for Identity {
    type Output = In;

    fn map(&self, item: In, _ctx: ItemContext) -> Result<In, DataError> {
        Ok(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply<M: Mapper<u32>>(m: &M, x: u32) -> Result<M::Output, DataError> {
        let ctx = ItemContext {
            epoch: 2,
            index: 5,
            source_index: 9,
        };
        m.map(x, ctx)
    }

    #[test]
    fn closures_and_identity_are_mappers() {
        assert_eq!(apply(&Identity, 7).unwrap(), 7);
        let f = |x: u32, ctx: ItemContext| {
            Ok::<_, DataError>(x * 100 + ctx.epoch as u32 * 10 + ctx.index as u32)
        };
        assert_eq!(apply(&f, 3).unwrap(), 325);
        let g = |_: u32, ctx: ItemContext| -> Result<(), DataError> {
            Err(DataError::transform(ctx.index, "boom"))
        };
        let e = apply(&g, 0).unwrap_err();
        assert_eq!(e.to_string(), "transform of item 5 failed: boom");
    }
}
