use std::path::PathBuf;

/// A syntax error in a canon file, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The file that failed to parse.
    pub file: PathBuf,
    /// 1-based line, when the parser knows it.
    pub line: Option<u64>,
    /// 1-based column, when the parser knows it.
    pub column: Option<u64>,
    /// What the parser expected or found.
    pub message: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": syntax error: {}", self.message)
    }
}

/// Everything that can go wrong reading or writing canon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanonError {
    /// The store directory could not be opened.
    #[error("cannot open the canon store at {path}: {source}")]
    Open {
        /// The store directory.
        path: PathBuf,
        /// What RocksDB said.
        source: oxigraph::store::StorageError,
    },
    /// A storage operation failed after the store was open.
    #[error("canon store error: {0}")]
    Storage(#[from] oxigraph::store::StorageError),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file extension names no RDF format we read.
    #[error("{path}: unknown RDF format; use a file ending in .ttl, .trig, .nq, .nt or .jsonld")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// A canon file is not well-formed; nothing was imported.
    #[error("{0}; nothing was imported")]
    Syntax(SyntaxError),
    /// The query text is not SPARQL.
    #[error("not a SPARQL query: {0}")]
    QuerySyntax(String),
    /// The query is a SPARQL update; this entry point is read-only.
    #[error("SPARQL updates are refused here: canon changes go through `lore import`")]
    UpdateRefused,
    /// The query failed while running.
    #[error("query failed: {0}")]
    Query(String),
    /// No production matches the given name.
    #[error("no production named '{name}'{hint}")]
    UnknownProduction {
        /// What the user typed.
        name: String,
        /// The known productions, as a hint.
        hint: String,
    },
    /// No character matches the given name in the production.
    #[error("no character named '{name}' in production {production}{hint}")]
    UnknownCharacter {
        /// What the user typed.
        name: String,
        /// The production searched.
        production: String,
        /// The characters of that production, as a hint.
        hint: String,
    },
    /// The character exists, but not in this production.
    #[error(
        "character {character} does not appear in production {production}; it appears in: {appears_in}"
    )]
    CharacterNotInProduction {
        /// The character's IRI.
        character: String,
        /// The production asked for.
        production: String,
        /// Where it does appear.
        appears_in: String,
    },
    /// No beat of story time matches.
    #[error(
        "no beat named '{name}' in production {production}; give a beat's name or a number{hint}"
    )]
    UnknownBeat {
        /// What the user typed.
        name: String,
        /// The production searched.
        production: String,
        /// The known beats, as a hint.
        hint: String,
    },
    /// The character is dead at the beat asked for, so cannot speak.
    #[error(
        "{name} is dead from beat {died_at} on (lore:diedAt), so cannot speak at beat {beat}; pick an earlier beat"
    )]
    DeadAtBeat {
        /// The character's name.
        name: String,
        /// The beat order of death.
        died_at: i64,
        /// The beat asked for.
        beat: i64,
    },
    /// No commit matches.
    #[error("no commit '{rev}': {hint}")]
    UnknownCommit {
        /// What was asked for.
        rev: String,
        /// How to name one.
        hint: String,
    },
    /// More than one commit starts with the given digits.
    #[error("'{rev}' names more than one commit ({matches}); give more digits")]
    AmbiguousCommit {
        /// What was asked for.
        rev: String,
        /// The commits it matches.
        matches: String,
    },
    /// Others changed the same triples after the commit a change was based on.
    #[error(
        "conflict: the change is based on commit {base}, but {commits} changed the same triples since: {triples}; nothing was committed (rebase on the newest commit and try again)"
    )]
    Conflict {
        /// The commit the change was based on.
        base: String,
        /// The commits since that touch the same triples.
        commits: String,
        /// The triples in conflict.
        triples: String,
    },
    /// A change removes triples canon does not hold.
    #[error("the change removes triples canon does not hold: {triples}; nothing was committed")]
    NotHeld {
        /// The triples.
        triples: String,
    },
    /// A change both adds and removes the same triples.
    #[error("the change both adds and removes: {triples}")]
    AddedAndRemoved {
        /// The triples.
        triples: String,
    },
    /// A change would leave canon as it is.
    #[error("the change adds nothing canon lacks and removes nothing; nothing was committed")]
    NoChange,
    /// A change touches a graph only the engine writes.
    #[error("the graph {graph} is the engine's own bookkeeping; canon changes may not touch it")]
    ReservedGraph {
        /// The graph.
        graph: String,
    },
    /// A change touches a graph its author may not change.
    #[error("the change touches {graph}, which this author may not change; nothing was committed")]
    OutsideScope {
        /// The graph.
        graph: String,
    },
    /// Later commits depend on the commit to revert.
    #[error(
        "cannot revert {commit} alone: later commits changed the same triples ({dependents}): {triples}; revert them with it (--with-dependents) or first"
    )]
    RevertBlocked {
        /// The commit asked for.
        commit: String,
        /// The later commits that depend on it.
        dependents: String,
        /// The triples they share.
        triples: String,
    },
    /// The canon itself is malformed in a way that stops reading it.
    #[error("malformed canon at {subject}: {message}")]
    Malformed {
        /// The node at fault.
        subject: String,
        /// What is wrong.
        message: String,
    },
}
