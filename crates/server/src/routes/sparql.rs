//! The SPARQL 1.1 Protocol endpoint for writers: read-only, over the caller's tenant's graphs.
//!
//! A query sees only the named graphs of its tenant's productions and the shared graphs they
//! extend: by default their union is the default graph and they are the named graphs. A query
//! (or protocol parameter) that names any other graph is refused, as are updates and SERVICE.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use oxigraph::io::{RdfFormat, RdfSerializer};
use oxigraph::model::{GraphName, NamedNode, NamedOrBlankNode};
use oxigraph::sparql::results::{QueryResultsFormat, QueryResultsSerializer};
use oxigraph::sparql::{CancellationToken, QueryDataset, QueryResults, SparqlEvaluator};

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::state::App;

/// Longest a query may run.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Protocol parameters, from the URL or a form body.
#[derive(Debug, Default)]
struct Params {
    query: Option<String>,
    update: bool,
    default_graphs: Vec<String>,
    named_graphs: Vec<String>,
    /// A commit: the query runs over canon as it stood right after it (our extension).
    as_of: Option<String>,
}

impl Params {
    fn read(&mut self, encoded: &[u8]) {
        for (name, value) in form_urlencoded::parse(encoded) {
            match &*name {
                "query" => self.query = Some(value.into_owned()),
                "update" => self.update = true,
                "default-graph-uri" => self.default_graphs.push(value.into_owned()),
                "named-graph-uri" => self.named_graphs.push(value.into_owned()),
                "as_of" => self.as_of = Some(value.into_owned()),
                _ => {}
            }
        }
    }
}

/// Runs a read-only SPARQL query: `GET /sparql?query=...`.
#[utoipa::path(get, path = "/sparql", tag = "canon",
    params(("query" = String, Query, description = "The SPARQL query"),
           ("default-graph-uri" = Option<Vec<String>>, Query, description = "Default graph(s)"),
           ("named-graph-uri" = Option<Vec<String>>, Query, description = "Named graph(s)"),
           ("as_of" = Option<String>, Query, description = "Query canon as it stood right after this commit")),
    responses((status = 200, description = "SPARQL results (JSON, XML, CSV, TSV) or RDF"),
              (status = 400, body = crate::wire::ErrorBody),
              (status = 403, body = crate::wire::ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(Role::Writer)?;
    let mut params = Params::default();
    params.read(uri.query().unwrap_or("").as_bytes());
    run(app, &caller, &headers, params).await
}

/// Runs a read-only SPARQL query: `POST /sparql` with `application/sparql-query` or a form.
#[utoipa::path(post, path = "/sparql", tag = "canon",
    request_body(content = String, content_type = "application/sparql-query"),
    responses((status = 200, description = "SPARQL results (JSON, XML, CSV, TSV) or RDF"),
              (status = 400, body = crate::wire::ErrorBody),
              (status = 403, body = crate::wire::ErrorBody),
              (status = 415, body = crate::wire::ErrorBody)),
    security(("api_key" = [])))]
pub async fn post(
    State(app): State<Arc<App>>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Role::Writer)?;
    let mut params = Params::default();
    params.read(uri.query().unwrap_or("").as_bytes());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/sparql-query" => {
            let text = String::from_utf8(body.to_vec())
                .map_err(|e| ApiError::invalid(format!("the query is not UTF-8: {e}")))?;
            params.query = Some(text);
        }
        "application/x-www-form-urlencoded" => params.read(&body),
        "application/sparql-update" => params.update = true,
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type '{other}': send application/sparql-query or \
                     application/x-www-form-urlencoded"
                ),
            ));
        }
    }
    run(app, &caller, &headers, params).await
}

fn graph_iri(iri: &str, what: &str) -> Result<NamedNode, ApiError> {
    NamedNode::new(iri).map_err(|e| ApiError::invalid(format!("{what} <{iri}>: {e}")))
}

fn update_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "update_refused",
        "SPARQL updates are refused: canon changes go through `lore import` and review",
    )
}

fn outside(graph: &str) -> ApiError {
    ApiError::forbidden(format!(
        "graph <{graph}> is not one of this tenant's canon graphs"
    ))
}

async fn run(
    app: Arc<App>,
    caller: &Caller,
    headers: &HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    if params.update {
        return Err(update_refused());
    }
    let text = params
        .query
        .clone()
        .ok_or_else(|| ApiError::invalid("missing the `query` parameter"))?;
    let allowed = app.catalog().graphs(&caller.tenant);
    let token = CancellationToken::new();
    // Oxigraph is built without its HTTP client, so SERVICE has no handler and fails.
    let mut prepared = SparqlEvaluator::new()
        .with_cancellation_token(token.clone())
        .parse_query(&text)
        .map_err(|e| {
            if SparqlEvaluator::new().parse_update(&text).is_ok() {
                update_refused()
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.to_string())
            }
        })?;
    restrict_dataset(prepared.dataset_mut(), &allowed, &params)?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let as_of = params.as_of;
    let work = tokio::task::spawn_blocking(move || {
        let past = as_of
            .map(|commit| app.store.as_of(&commit))
            .transpose()
            .map_err(ApiError::from_canon)?;
        let store = past.as_ref().unwrap_or(&app.store);
        let results = prepared
            .on_store(store.oxigraph())
            .execute()
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query_failed", e.to_string()))?;
        serialize(results, &accept)
    });
    match tokio::time::timeout(QUERY_TIMEOUT, work).await {
        Ok(joined) => joined.map_err(ApiError::internal)?,
        Err(_) => {
            token.cancel();
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "query_timeout",
                format!(
                    "the query ran over {} s and was cancelled",
                    QUERY_TIMEOUT.as_secs()
                ),
            ))
        }
    }
}

/// Limits a query's dataset to `allowed`, the tenant's graphs: the graphs it names (in FROM
/// and FROM NAMED, or the protocol's parameters) must be among them, and a query that names
/// none reads them all.
fn restrict_dataset(
    dataset: &mut QueryDataset,
    allowed: &[String],
    params: &Params,
) -> Result<(), ApiError> {
    // Graphs the query names in FROM / FROM NAMED must be the tenant's.
    let named_in_query: Vec<String> = dataset
        .default_graph_graphs()
        .into_iter()
        .flatten()
        .filter_map(|g| match g {
            GraphName::NamedNode(n) => Some(n.as_str().to_owned()),
            _ => None,
        })
        .chain(
            dataset
                .available_named_graphs()
                .into_iter()
                .flatten()
                .map(|g| match g {
                    NamedOrBlankNode::NamedNode(n) => n.as_str().to_owned(),
                    NamedOrBlankNode::BlankNode(b) => b.to_string(),
                }),
        )
        .collect();
    for graph in named_in_query
        .iter()
        .chain(&params.default_graphs)
        .chain(&params.named_graphs)
    {
        if !allowed.contains(graph) {
            return Err(outside(graph));
        }
    }
    let tenant_graphs = allowed
        .iter()
        .map(|g| graph_iri(g, "graph"))
        .collect::<Result<Vec<_>, _>>()?;
    if !params.default_graphs.is_empty() {
        let graphs = params
            .default_graphs
            .iter()
            .map(|g| graph_iri(g, "default-graph-uri").map(GraphName::from))
            .collect::<Result<_, _>>()?;
        dataset.set_default_graph(graphs);
    } else if dataset.is_default_dataset() || dataset.default_graph_graphs().is_none() {
        dataset.set_default_graph(tenant_graphs.iter().cloned().map(GraphName::from).collect());
    }
    if !params.named_graphs.is_empty() {
        let graphs = params
            .named_graphs
            .iter()
            .map(|g| graph_iri(g, "named-graph-uri").map(NamedOrBlankNode::from))
            .collect::<Result<_, _>>()?;
        dataset.set_available_named_graphs(graphs);
    } else if dataset.available_named_graphs().is_none() {
        dataset.set_available_named_graphs(
            tenant_graphs
                .into_iter()
                .map(NamedOrBlankNode::from)
                .collect(),
        );
    }
    Ok(())
}

fn media_types(accept: &str) -> impl Iterator<Item = &str> {
    accept
        .split(',')
        .map(|m| m.split(';').next().unwrap_or("").trim())
        .filter(|m| !m.is_empty())
}

fn serialize(results: QueryResults<'_>, accept: &str) -> Result<Response, ApiError> {
    let failed =
        |e: std::io::Error| ApiError::new(StatusCode::BAD_REQUEST, "query_failed", e.to_string());
    let evaluation = |e: oxigraph::sparql::QueryEvaluationError| {
        ApiError::new(StatusCode::BAD_REQUEST, "query_failed", e.to_string())
    };
    match results {
        QueryResults::Graph(triples) => {
            let format = media_types(accept)
                .find_map(RdfFormat::from_media_type)
                .unwrap_or(RdfFormat::Turtle);
            let mut serializer = RdfSerializer::from_format(format).for_writer(Vec::new());
            for triple in triples {
                serializer
                    .serialize_triple(&triple.map_err(evaluation)?)
                    .map_err(failed)?;
            }
            let body = serializer.finish().map_err(failed)?;
            Ok(([(header::CONTENT_TYPE, format.media_type())], body).into_response())
        }
        QueryResults::Boolean(value) => {
            let format = results_format(accept);
            let body = QueryResultsSerializer::from_format(format)
                .serialize_boolean_to_writer(Vec::new(), value)
                .map_err(failed)?;
            Ok(([(header::CONTENT_TYPE, format.media_type())], body).into_response())
        }
        QueryResults::Solutions(solutions) => {
            let format = results_format(accept);
            let mut writer = QueryResultsSerializer::from_format(format)
                .serialize_solutions_to_writer(Vec::new(), solutions.variables().to_vec())
                .map_err(failed)?;
            for solution in solutions {
                writer
                    .serialize(&solution.map_err(evaluation)?)
                    .map_err(failed)?;
            }
            let body = writer.finish().map_err(failed)?;
            Ok(([(header::CONTENT_TYPE, format.media_type())], body).into_response())
        }
    }
}

fn results_format(accept: &str) -> QueryResultsFormat {
    media_types(accept)
        .find_map(QueryResultsFormat::from_media_type)
        .unwrap_or(QueryResultsFormat::Json)
}
