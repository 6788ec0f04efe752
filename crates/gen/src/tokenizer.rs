//! A GGUF file's tokenizer alone, for the watermark detector: llama.cpp reads the vocabulary
//! and skips the weights, so verifying text costs milliseconds and no model memory.

use std::path::Path;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;

use crate::GenError;
use crate::embedded::{check_model_file, llama_backend};

/// The tokenizer of one GGUF model.
pub struct GgufTokenizer {
    model: LlamaModel,
}

impl GgufTokenizer {
    /// Reads the vocabulary of the GGUF file at `path`.
    pub fn load(path: &Path) -> Result<GgufTokenizer, GenError> {
        check_model_file(path)?;
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(llama_backend()?, path, &params).map_err(|e| {
            GenError::ModelLoad {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok(GgufTokenizer { model })
    }

    /// Tokens in the vocabulary.
    pub fn n_vocab(&self) -> u32 {
        self.model.n_vocab().max(0) as u32
    }

    /// The tokens of `text`, as the model would read it mid-conversation (no start token).
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .into_iter()
            .map(|t| t.0 as u32)
            .collect()
    }
}
