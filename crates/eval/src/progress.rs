//! How long work reports how far it got. The caller draws it (the CLI shows a bar); an
//! evaluation only counts.

/// A source of progress reports, one stage at a time.
pub trait Progress {
    /// Starts a stage of `len` steps, named `what`; it ends when the returned value drops.
    fn stage(&self, what: &str, len: usize) -> Box<dyn Stage + '_>;
}

/// One stage of work under way.
pub trait Stage {
    /// One more step done.
    fn step(&self);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn stage(&self, _: &str, _: usize) -> Box<dyn Stage + '_> {
        Box::new(Quiet)
    }
}

impl Stage for Quiet {
    fn step(&self) {}
}
