//! The on-disk canon store.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use oxigraph::io::{RdfFormat, RdfParseError, RdfParser};
use oxigraph::model::{Quad, Term, Triple};
use oxigraph::sparql::{QueryResults, SparqlEvaluator};
use oxigraph::store::Store;

use crate::error::{CanonError, SyntaxError};

/// Memory the bulk loader may use per import, in megabytes; keeps large imports bounded.
pub(crate) const BULK_LOADER_MEMORY_MB: usize = 512;

/// Canon on disk: an Oxigraph store (RocksDB) holding one named graph per production
/// and the shared graphs they extend, and the history of every change (`lore:history`).
pub struct CanonStore {
    store: Store,
    path: PathBuf,
    /// Held while a change is checked against canon and committed, so two changes never
    /// both pass their checks against the same head. One process writes a store (RocksDB
    /// locks it), so a lock in the process suffices.
    writer: Mutex<()>,
}

/// The result of a read-only query.
#[derive(Debug)]
pub enum QueryOutput {
    /// `SELECT`: variable names and rows (unbound cells are `None`).
    Solutions {
        /// Variable names without `?`.
        variables: Vec<String>,
        /// One row per solution.
        rows: Vec<Vec<Option<Term>>>,
    },
    /// `ASK`.
    Boolean(bool),
    /// `CONSTRUCT` or `DESCRIBE`.
    Graph(Vec<Triple>),
}

impl CanonStore {
    /// Opens (creating if needed) the store at `path` for reading and writing.
    pub fn open(path: &Path) -> Result<Self, CanonError> {
        let store = Store::open(path).map_err(|source| CanonError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            store,
            path: path.to_owned(),
            writer: Mutex::new(()),
        })
    }

    /// Opens an existing store for reading only; other readers and one writer may share it.
    pub fn open_read_only(path: &Path) -> Result<Self, CanonError> {
        let store = Store::open_read_only(path).map_err(|source| CanonError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            store,
            path: path.to_owned(),
            writer: Mutex::new(()),
        })
    }

    /// An empty store in memory, for linting files and for tests.
    pub fn in_memory() -> Result<Self, CanonError> {
        Ok(Self::from_oxigraph(Store::new()?))
    }

    /// A store in memory around `store`.
    pub(crate) fn from_oxigraph(store: Store) -> Self {
        Self {
            store,
            path: PathBuf::new(),
            writer: Mutex::new(()),
        }
    }

    /// Held while a change is checked and committed.
    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The directory this store lives in (empty for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying Oxigraph store.
    pub fn oxigraph(&self) -> &Store {
        &self.store
    }

    /// Runs a read-only SPARQL query. Updates are refused with [`CanonError::UpdateRefused`].
    pub fn query(&self, sparql: &str) -> Result<QueryOutput, CanonError> {
        let prepared = match SparqlEvaluator::new().parse_query(sparql) {
            Ok(prepared) => prepared,
            Err(query_error) => {
                if SparqlEvaluator::new().parse_update(sparql).is_ok() {
                    return Err(CanonError::UpdateRefused);
                }
                return Err(CanonError::QuerySyntax(query_error.to_string()));
            }
        };
        let results = prepared
            .on_store(&self.store)
            .execute()
            .map_err(|e| CanonError::Query(e.to_string()))?;
        collect(results)
    }
}

/// Every quad of a canon file, parsed in full (for a file that joins a transaction with other
/// documents; large files go through [`CanonStore::import`]).
pub fn read_quads(file: &Path) -> Result<Vec<Quad>, CanonError> {
    parser(format_of(file)?, file)?
        .for_reader(open(file)?)
        .map(|q| q.map_err(|e| syntax_error(file, e)))
        .collect()
}

fn collect(results: QueryResults<'_>) -> Result<QueryOutput, CanonError> {
    let query_error = |e: oxigraph::sparql::QueryEvaluationError| CanonError::Query(e.to_string());
    Ok(match results {
        QueryResults::Boolean(b) => QueryOutput::Boolean(b),
        QueryResults::Solutions(solutions) => {
            let variables: Vec<_> = solutions
                .variables()
                .iter()
                .map(|v| v.as_str().to_owned())
                .collect();
            let mut rows = Vec::new();
            for solution in solutions {
                let solution = solution.map_err(query_error)?;
                rows.push(
                    variables
                        .iter()
                        .map(|v| solution.get(v.as_str()).cloned())
                        .collect(),
                );
            }
            QueryOutput::Solutions { variables, rows }
        }
        QueryResults::Graph(triples) => {
            QueryOutput::Graph(triples.collect::<Result<_, _>>().map_err(query_error)?)
        }
    })
}

/// The RDF format a file's extension names.
pub(crate) fn format_of(path: &Path) -> Result<RdfFormat, CanonError> {
    // An explicit list: Oxigraph also maps loose extensions such as `.txt` to a format.
    match path.extension().and_then(|e| e.to_str()) {
        Some("ttl") => Ok(RdfFormat::Turtle),
        Some("trig") => Ok(RdfFormat::TriG),
        Some("nt") => Ok(RdfFormat::NTriples),
        Some("nq") => Ok(RdfFormat::NQuads),
        Some("jsonld" | "json") => Ok(RdfFormat::JsonLd {
            profile: oxigraph::io::JsonLdProfileSet::empty(),
        }),
        _ => Err(CanonError::UnknownFormat {
            path: path.to_owned(),
        }),
    }
}

pub(crate) fn parser(format: RdfFormat, path: &Path) -> Result<RdfParser, CanonError> {
    let base = format!("file://{}", path.display());
    RdfParser::from_format(format)
        .with_base_iri(base)
        .map_err(|e| CanonError::Malformed {
            subject: path.display().to_string(),
            message: e.to_string(),
        })
}

pub(crate) fn open(path: &Path) -> Result<BufReader<File>, CanonError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| CanonError::Read {
            path: path.to_owned(),
            source,
        })
}

pub(crate) fn syntax_error(file: &Path, error: RdfParseError) -> CanonError {
    match error {
        RdfParseError::Io(source) => CanonError::Read {
            path: file.to_owned(),
            source,
        },
        RdfParseError::Syntax(e) => {
            let location = e.location();
            CanonError::Syntax(SyntaxError {
                file: file.to_owned(),
                line: location.as_ref().map(|l| l.start.line + 1),
                column: location.as_ref().map(|l| l.start.column + 1),
                message: e.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::CommitMeta;

    fn meta() -> CommitMeta {
        CommitMeta::new("test", "import")
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn failed_import_leaves_store_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store = CanonStore::open(&dir.path().join("store")).unwrap();
        let good = write(dir.path(), "good.ttl", "<urn:a> <urn:b> <urn:c> .\n");
        let report = store.import(&[good], meta(), |_| ()).unwrap();
        let revision = store.revision().unwrap();
        assert_eq!(revision, report.commit.unwrap().id);
        let len = store.oxigraph().len().unwrap();

        let more = write(dir.path(), "more.ttl", "<urn:d> <urn:e> <urn:f> .\n");
        let bad = write(
            dir.path(),
            "bad.ttl",
            "<urn:x> <urn:y> <urn:z> .\n<urn:x> <urn:y> .\n",
        );
        let err = store.import(&[more, bad], meta(), |_| ()).unwrap_err();
        let CanonError::Syntax(syntax) = err else {
            panic!("{err}")
        };
        assert_eq!(syntax.line, Some(2));
        assert!(syntax.column.is_some());
        assert_eq!(
            store.oxigraph().len().unwrap(),
            len,
            "a failed import wrote something"
        );
        assert_eq!(store.revision().unwrap(), revision);
    }

    #[test]
    fn trig_goes_to_named_graphs() {
        let dir = tempfile::tempdir().unwrap();
        let store = CanonStore::open(&dir.path().join("store")).unwrap();
        let file = write(
            dir.path(),
            "w.trig",
            "<urn:g> { <urn:a> <urn:b> \"c\" . }\n",
        );
        let report = store.import(&[file], meta(), |_| ()).unwrap();
        assert_eq!(report.files[0].1, 1);
        let QueryOutput::Boolean(true) = store
            .query("ASK { GRAPH <urn:g> { <urn:a> ?p ?o } }")
            .unwrap()
        else {
            panic!("quad not in its named graph")
        };
    }

    #[test]
    fn json_ld_imports() {
        let dir = tempfile::tempdir().unwrap();
        let store = CanonStore::open(&dir.path().join("store")).unwrap();
        let file = write(
            dir.path(),
            "w.jsonld",
            r#"{"@context": {"lore": "https://lorekeeper.dev/ns/lore#"},
                "@id": "urn:w:odile", "@type": "lore:Character", "lore:persona": "A warden."}"#,
        );
        assert_eq!(store.import(&[file], meta(), |_| ()).unwrap().files[0].1, 2);
        let QueryOutput::Boolean(true) = store
            .query("ASK { <urn:w:odile> <https://lorekeeper.dev/ns/lore#persona> \"A warden.\" }")
            .unwrap()
        else {
            panic!("JSON-LD persona not imported")
        };
    }

    #[test]
    fn unknown_extension_is_named() {
        let err = format_of(Path::new("world.txt")).unwrap_err();
        assert!(err.to_string().contains("world.txt"));
        assert!(err.to_string().contains(".ttl"));
    }

    #[test]
    fn updates_are_refused_and_garbage_is_a_syntax_error() {
        let store = CanonStore::in_memory().unwrap();
        assert!(matches!(
            store.query("INSERT DATA { <urn:a> <urn:b> <urn:c> }"),
            Err(CanonError::UpdateRefused)
        ));
        assert!(matches!(
            store.query("SELEKT * WHERE {}"),
            Err(CanonError::QuerySyntax(_))
        ));
        assert_eq!(store.oxigraph().len().unwrap(), 0);
    }
}
