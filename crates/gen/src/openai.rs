//! The OpenAI-compatible backend: any server speaking `POST /v1/chat/completions` with SSE
//! streaming (llama.cpp's server, vLLM, hosted APIs).

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::prompt::Conversation;
use crate::{
    Backend, BackendInfo, GenError, GenParams, Generation, Session, StopReason, StopScanner,
};

/// Where and how to reach the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiConfig {
    /// Base URL up to and including `/v1`, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// The model name the server expects.
    pub model: String,
    /// Bearer token, if the server needs one (read from the environment by the caller).
    pub api_key: Option<String>,
    /// Longest wait for the connection.
    pub connect_timeout: Duration,
    /// Longest silence between two parts of the response.
    pub read_timeout: Duration,
    /// Retries after a failed connection, a 429 or a 5xx, before anything streamed.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff: Duration,
}

impl OpenAiConfig {
    /// Defaults: 5 s to connect, 60 s between reads, 2 retries from 200 ms.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> OpenAiConfig {
        OpenAiConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            retries: 2,
            retry_backoff: Duration::from_millis(200),
        }
    }
}

/// A backend that forwards each turn to an OpenAI-compatible server.
pub struct OpenAiBackend {
    config: OpenAiConfig,
    agent: ureq::Agent,
}

impl OpenAiBackend {
    /// A backend for `config`; nothing is sent until the first turn.
    pub fn new(config: OpenAiConfig) -> OpenAiBackend {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(config.connect_timeout))
                .timeout_recv_response(Some(config.read_timeout))
                .timeout_recv_body(Some(config.read_timeout))
                // A server runs many turns at once against one model server: keep a
                // connection per concurrent turn instead of reconnecting (ureq keeps 3).
                .max_idle_connections(256)
                .max_idle_connections_per_host(256)
                // Chat requests and SSE lines are small; ureq's 128 KiB a direction per pooled
                // connection cost page faults at every turn and 64 MiB across the pool.
                .input_buffer_size(32 * 1024)
                .output_buffer_size(16 * 1024)
                .build(),
        );
        OpenAiBackend { config, agent }
    }

    fn url(&self) -> String {
        format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        )
    }
}

impl Backend for OpenAiBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            kind: "openai",
            model: self.config.model.clone(),
            chat_template: true,
            model_sha256: None,
        }
    }

    fn open_session(&self) -> Result<Box<dyn Session>, GenError> {
        Ok(Box::new(OpenAiSession {
            backend: OpenAiBackend {
                config: self.config.clone(),
                agent: self.agent.clone(),
            },
        }))
    }
}

struct OpenAiSession {
    backend: OpenAiBackend,
}

impl OpenAiSession {
    /// The JSON body of the request for `conversation`, and the stop strings the stream is
    /// cut at (those the server is not sent).
    fn request_body(
        &self,
        conversation: &Conversation,
        params: &GenParams,
    ) -> Result<(Vec<u8>, Vec<String>), String> {
        let mut stops = conversation.stop_strings();
        stops.retain(|s| s != "\n");
        if params.structured.is_some() {
            // The server's strict schema ends the value; a stop string could cut it short.
            stops.clear();
        }
        let request = ChatRequest {
            model: &self.backend.config.model,
            messages: conversation
                .messages()
                .into_iter()
                .map(|(role, content)| Message { role, content })
                .collect(),
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
            max_tokens: params.max_tokens,
            temperature: params.sampler.temperature,
            top_p: params.sampler.top_p,
            seed: params.sampler.seed,
            stop: stops.iter().take(4).map(String::as_str).collect(),
            response_format: params.structured.as_ref().map(|structured| {
                json!({
                    "type": "json_schema",
                    "json_schema": {
                        "name": structured.name,
                        "strict": true,
                        "schema": structured.schema.to_json_schema(),
                    },
                })
            }),
        };
        // Serialised once, not once per attempt.
        let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        Ok((body, stops))
    }

    /// Sends `body`; a failed connection, a 429 or a 5xx is retried with backoff, since
    /// nothing has streamed to the player yet.
    fn send(&self, url: &str, body: &[u8]) -> Result<impl Read + use<>, String> {
        let mut attempt = 0;
        let reader = loop {
            let mut request = self
                .backend
                .agent
                .post(url)
                .header("Accept", "text/event-stream")
                .header("Content-Type", "application/json");
            if let Some(key) = &self.backend.config.api_key {
                request = request.header("Authorization", &format!("Bearer {key}"));
            }
            let failure = match request.send(body) {
                Ok(response) => {
                    let status = response.status();
                    let reader = response.into_body().into_reader();
                    if status.is_success() {
                        break reader;
                    }
                    let mut text = String::new();
                    let _ = reader.take(1024).read_to_string(&mut text);
                    let failure = format!("HTTP {status}: {}", text.trim());
                    if !(status.is_server_error() || status.as_u16() == 429) {
                        return Err(failure);
                    }
                    failure
                }
                Err(e) => e.to_string(),
            };
            if attempt >= self.backend.config.retries {
                return Err(if attempt == 0 {
                    failure
                } else {
                    format!("{failure} (after {} attempts)", attempt + 1)
                });
            }
            std::thread::sleep(self.backend.config.retry_backoff * 2u32.pow(attempt));
            attempt += 1;
        };
        Ok(reader)
    }
}

impl Session for OpenAiSession {
    fn generate(
        &mut self,
        conversation: &Conversation,
        params: &GenParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, GenError> {
        let url = self.backend.url();
        let remote = |reason: String| GenError::Remote {
            url: url.clone(),
            reason,
        };
        let (body, stops) = self.request_body(conversation, params).map_err(remote)?;
        let started = Instant::now();
        let reader = self.send(&url, &body).map_err(remote)?;
        let mut reader = BufReader::new(reader);
        let stream =
            read_stream(&mut reader, stops, params.max_tokens, on_text, started).map_err(|e| {
                match e {
                    StreamError::Io(e) => remote(e.to_string()),
                    StreamError::Protocol(reason) => GenError::RemoteProtocol {
                        url: url.clone(),
                        reason,
                    },
                }
            })?;
        // The connection goes back to the agent's pool only once its body has been read to
        // the end; without this every turn would open a new connection.
        let _ = std::io::copy(&mut reader.take(64 * 1024), &mut std::io::sink());
        if let Some(structured) = &params.structured {
            // We do not decode here, so the server's word is checked, not trusted.
            serde_json::from_str::<Value>(&stream.text)
                .map_err(|e| e.to_string())
                .and_then(|v| structured.schema.check(&v))
                .map_err(|reason| GenError::Unstructured {
                    name: structured.name.clone(),
                    reason,
                })?;
        }
        Ok(stream)
    }
}

/// The body of `POST /chat/completions`, borrowing the conversation rather than copying it.
#[derive(serde::Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    stream: bool,
    stream_options: StreamOptions,
    max_tokens: usize,
    temperature: f32,
    top_p: f32,
    seed: u64,
    /// The OpenAI API accepts at most four; ours are also applied locally.
    stop: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
}

#[derive(serde::Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Cow<'a, str>,
}

#[derive(serde::Serialize)]
struct StreamOptions {
    include_usage: bool,
}

enum StreamError {
    Io(std::io::Error),
    Protocol(String),
}

/// The parts of a chat completion chunk we read; text borrows from the line when it can.
#[derive(serde::Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<ChunkUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(serde::Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Delta<'a>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Default, serde::Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct ChunkUsage {
    #[serde(default)]
    prompt_tokens: usize,
    #[serde(default)]
    completion_tokens: Option<usize>,
}

/// Reads an SSE stream of chat completion chunks.
fn read_stream(
    reader: impl BufRead,
    stops: Vec<String>,
    max_tokens: usize,
    on_text: &mut dyn FnMut(&str) -> bool,
    started: Instant,
) -> Result<Generation, StreamError> {
    let mut scanner = StopScanner::new(stops);
    let mut generated = 0;
    let mut prompt_tokens = 0;
    let mut first = None;
    let mut finish: Option<StopReason> = None;
    let mut done = false;
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(StreamError::Io)?;
        let Some(data) = data_of(number + 1, line.trim_end())? else {
            continue;
        };
        if data == "[DONE]" {
            done = true;
            break;
        }
        let chunk = chunk_of(number + 1, data)?;
        if let Some(usage) = chunk.usage {
            prompt_tokens = usage.prompt_tokens;
            if let Some(n) = usage.completion_tokens {
                generated = n;
            }
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            continue;
        };
        if let Some(text) = choice.delta.content.as_deref()
            && !text.is_empty()
        {
            generated += 1;
            first.get_or_insert_with(|| started.elapsed());
            let shown = scanner.push(text);
            if !shown.is_empty() && !on_text(&shown) {
                finish = Some(StopReason::Cancelled);
                break;
            }
            if scanner.stopped() {
                finish = Some(StopReason::Stop);
                break;
            }
            // A server that ignores max_tokens must not keep a turn going for ever.
            if generated >= max_tokens {
                finish = Some(StopReason::Length);
                break;
            }
        }
        match choice.finish_reason.as_deref() {
            Some("length") => finish = Some(StopReason::Length),
            Some(_) => finish = finish.or(Some(StopReason::EndOfTurn)),
            None => {}
        }
    }
    if !done && finish.is_none() {
        return Err(StreamError::Protocol(
            "the stream ended before [DONE] or a finish_reason".into(),
        ));
    }
    let rest = scanner.finish();
    if !rest.is_empty() {
        on_text(&rest);
    }
    let time_to_first_token = first.unwrap_or_else(|| started.elapsed());
    Ok(Generation {
        text: scanner.text().trim_end().to_owned(),
        prompt_tokens,
        evaluated_tokens: prompt_tokens,
        generated_tokens: generated,
        time_to_first_token,
        prompt_time: time_to_first_token,
        generation_time: started.elapsed().saturating_sub(time_to_first_token),
        stop: finish.unwrap_or(StopReason::EndOfTurn),
        // The server chose the tokens: nothing of ours is in them.
        watermark: None,
    })
}

/// The data of SSE line `number`, or `None` for a line that carries none (a blank line, a
/// comment, an event name, an id, a retry).
fn data_of(number: usize, line: &str) -> Result<Option<&str>, StreamError> {
    if line.is_empty()
        || line.starts_with(':')
        || line.starts_with("event:")
        || line.starts_with("id:")
        || line.starts_with("retry:")
    {
        return Ok(None);
    }
    match line.strip_prefix("data:").map(str::trim_start) {
        Some(data) => Ok(Some(data)),
        None => Err(StreamError::Protocol(format!(
            "line {number}: expected 'data:', got {:?}",
            truncate(line)
        ))),
    }
}

/// The chunk `data` of line `number` holds; an error the server streamed is an error here.
fn chunk_of(number: usize, data: &str) -> Result<Chunk<'_>, StreamError> {
    let chunk: Chunk<'_> = serde_json::from_str(data).map_err(|e| {
        StreamError::Protocol(format!(
            "line {number}: not JSON ({e}): {:?}",
            truncate(data)
        ))
    })?;
    if let Some(error) = chunk.error.as_ref().filter(|e| !e.is_null()) {
        return Err(StreamError::Protocol(format!(
            "the server reported an error: {error}"
        )));
    }
    Ok(chunk)
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(stream: &str) -> Result<(Generation, String), String> {
        let mut shown = String::new();
        read_stream(
            stream.as_bytes(),
            vec!["Player:".into()],
            8,
            &mut |t| {
                shown.push_str(t);
                true
            },
            Instant::now(),
        )
        .map(|g| (g, shown))
        .map_err(|e| match e {
            StreamError::Io(e) => e.to_string(),
            StreamError::Protocol(p) => p,
        })
    }

    #[test]
    fn reads_deltas_until_done() {
        let stream = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
                      data: {\"choices\":[{\"delta\":{\"content\":\"Evening\"}}]}\n\n\
                      data: {\"choices\":[{\"delta\":{\"content\":\", love.\"},\"finish_reason\":\"stop\"}]}\n\n\
                      data: {\"choices\":[],\"usage\":{\"prompt_tokens\":42,\"completion_tokens\":3}}\n\n\
                      data: [DONE]\n\n";
        let (g, shown) = parse(stream).unwrap();
        assert_eq!(g.text, "Evening, love.");
        assert_eq!(shown, g.text);
        assert_eq!(g.prompt_tokens, 42);
        assert_eq!(g.generated_tokens, 3);
    }

    #[test]
    fn applies_stop_rules_locally() {
        let stream =
            "data: {\"choices\":[{\"delta\":{\"content\":\"Aye. Player: no\"}}]}\n\ndata: [DONE]\n";
        let (g, _) = parse(stream).unwrap();
        assert_eq!(g.text, "Aye.");
        assert_eq!(g.stop, StopReason::Stop);
    }

    #[test]
    fn a_server_that_ignores_max_tokens_is_cut_off() {
        let chunk = "data: {\"choices\":[{\"delta\":{\"content\":\" on\"}}]}\n\n";
        let (g, _) = parse(&chunk.repeat(100)).unwrap();
        assert_eq!(g.stop, StopReason::Length);
        assert_eq!(g.generated_tokens, 8);
    }

    #[test]
    fn garbage_is_a_protocol_error_with_its_line() {
        let err = parse("<html>502 Bad Gateway</html>\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        let err = parse("data: {not json\n").unwrap_err();
        assert!(err.contains("not JSON"), "{err}");
        let err = parse("data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n").unwrap_err();
        assert!(err.contains("ended before"), "{err}");
    }

    /// Serves one canned HTTP response per connection, in order, and counts requests.
    /// Requests served so far, and their bodies.
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

    fn serve(responses: Vec<&'static str>) -> (String, Seen) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let bodies = Seen::default();
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for response in responses {
                let (mut socket, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(socket.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                socket.write_all(response.as_bytes()).unwrap();
            }
        });
        (url, bodies)
    }

    fn conversation() -> Conversation {
        Conversation {
            character: "Ada".into(),
            player: "Visitor".into(),
            others: vec![],
            avoid: Vec::new(),
            preamble: "Ada keeps bees.".into(),
            turns: vec![crate::Turn {
                role: crate::Role::Player,
                text: "Hello".into(),
                recalled: vec![],
            }],
        }
    }

    fn quick_retrying_session(url: String) -> Box<dyn Session> {
        let mut config = OpenAiConfig::new(url, "m");
        config.retry_backoff = Duration::from_millis(1);
        OpenAiBackend::new(config).open_session().unwrap()
    }

    const UNAVAILABLE: &str =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy";

    #[test]
    fn an_unavailable_server_is_retried_with_backoff() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n\
                  data: {\"choices\":[{\"delta\":{\"content\":\"Hm.\"},\"finish_reason\":\"stop\"}]}\n\n\
                  data: [DONE]\n\n";
        let (url, count) = serve(vec![UNAVAILABLE, UNAVAILABLE, ok]);
        let mut session = quick_retrying_session(url);
        let g = session
            .generate(&conversation(), &GenParams::default(), &mut |_| true)
            .unwrap();
        assert_eq!(g.text, "Hm.");
        assert_eq!(count.lock().unwrap().len(), 3);
    }

    #[test]
    fn a_client_error_is_not_retried_and_retries_give_up() {
        let bad = "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad";
        let (url, count) = serve(vec![bad]);
        let mut session = quick_retrying_session(url);
        let err = session
            .generate(&conversation(), &GenParams::default(), &mut |_| true)
            .unwrap_err();
        assert!(err.to_string().contains("400"), "{err}");
        assert_eq!(count.lock().unwrap().len(), 1);

        let (url, count) = serve(vec![UNAVAILABLE, UNAVAILABLE, UNAVAILABLE]);
        let mut session = quick_retrying_session(url);
        let err = session
            .generate(&conversation(), &GenParams::default(), &mut |_| true)
            .unwrap_err();
        assert!(err.to_string().contains("after 3 attempts"), "{err}");
        assert_eq!(count.lock().unwrap().len(), 3);
    }

    #[test]
    fn structured_output_is_asked_for_and_checked() {
        let wrong = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n\
                     data: {\"choices\":[{\"delta\":{\"content\":\"{\\\"title\\\": 3}\"},\"finish_reason\":\"stop\"}]}\n\n\
                     data: [DONE]\n\n";
        let (url, bodies) = serve(vec![wrong]);
        let mut session = quick_retrying_session(url);
        let params = GenParams {
            structured: Some(crate::Structured {
                name: "write_up".into(),
                schema: crate::Schema::Object(vec![(
                    "title".into(),
                    crate::Schema::String { min: 1, max: 40 },
                )]),
            }),
            ..GenParams::default()
        };
        let err = session
            .generate(&conversation(), &params, &mut |_| true)
            .unwrap_err();
        assert!(
            matches!(&err, GenError::Unstructured { reason, .. } if reason == "$.title: expected a string"),
            "{err}"
        );
        let body: Value = serde_json::from_str(&bodies.lock().unwrap()[0]).unwrap();
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
        assert_eq!(
            body["response_format"]["json_schema"]["schema"]["required"],
            json!(["title"])
        );
        assert_eq!(body["stop"], json!([]), "no stop string cuts a JSON value");
    }
}
