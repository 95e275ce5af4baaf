//! The token API inside a run: create, complete, reject, heartbeat, extend, retrieve and list,
//! each recorded.

use futures_util::Stream;
use serde::Serialize;
use waitpoint_types::JournalKind;
use waitpoint_types::api::{
    CompleteResponse, CreateTokenRequest, CreateTokenResponse, Page, ProlongResponse, RejectTokenRequest, TimeText,
    TokenDetail, TokenItem,
};

use super::journal::Begin;

/// The statuses of a token call's refusal that are recorded with it (see
/// [`Context::recorded_call`]).
const REFUSALS: [u16; 4] = [400, 404, 409, 422];

/// A recorded token call: its answer, or its refusal.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Recorded<T> {
    Refused { refused: Refusal },
    Answer(T),
}

/// A recorded refusal.
#[derive(serde::Serialize, serde::Deserialize)]
struct Refusal {
    status: u16,
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
}
use crate::client::{check_token_request, paginate};
use crate::error::decode_json;
use crate::{AsTokenId, Context, Error, ListFilter, Result, Token};

impl Context {
    /// Creates a waitpoint token, with the same options as
    /// [`Client::create_token`](crate::Client::create_token). On replay, the same token.
    pub async fn create_token(&self, request: CreateTokenRequest) -> Result<CreateTokenResponse> {
        check_token_request(&request)?;
        match self.begin(JournalKind::CreateToken, "").await? {
            Begin::Replayed(result) => decode_json(&result, || "the recorded result of CREATE_TOKEN".into()),
            Begin::Live { mut cursor, seq } => {
                let response = self.run.channel.run_token(&self.run.run_id, cursor.epoch, seq, request).await;
                let response = self.guard(response)?;
                cursor.next_seq += 1;
                Ok(response.token)
            }
        }
    }

    /// Completes `token` with `output` (the first completion wins).
    pub async fn complete_token<T: Serialize + ?Sized>(&self, token: impl AsTokenId, output: &T) -> Result<()> {
        let id = token.token_id();
        let _: serde_json::Value = self
            .recorded(JournalKind::CompleteToken, id, || async {
                self.run.client.complete_token(id, output).await?;
                Ok::<_, Error>(serde_json::json!({ "success": true }))
            })
            .await?;
        Ok(())
    }

    /// Rejects `token` with an error (the first outcome wins). Recorded as a step named
    /// `wait.rejectToken <id>`, as the TypeScript SDK names it: a replay sends nothing again.
    pub async fn reject_token(&self, token: impl AsTokenId, rejection: &RejectTokenRequest) -> Result<()> {
        let id = token.token_id();
        self.recorded_call(&format!("wait.rejectToken {id}"), || async {
            self.run.client.reject_token(id, rejection).await?;
            Ok(CompleteResponse { success: true })
        })
        .await
        .map(drop)
    }

    /// Sends `token` a heartbeat. Recorded as a step named `wait.heartbeatToken <id>`: a replay
    /// gets the recorded answer and sends nothing.
    pub async fn heartbeat_token(&self, token: impl AsTokenId) -> Result<ProlongResponse> {
        let id = token.token_id();
        self.recorded_call(&format!("wait.heartbeatToken {id}"), || self.run.client.heartbeat_token(id)).await
    }

    /// Moves `token`'s timeout later. Recorded as a step named `wait.extendToken <id>` (the
    /// timeout left out of the name: a deadline computed from the clock differs on replay, and
    /// the recorded extend is the truth); a duration counts from the first execution.
    pub async fn extend_token(&self, token: impl AsTokenId, timeout: impl Into<TimeText>) -> Result<ProlongResponse> {
        let id = token.token_id();
        let timeout = timeout.into();
        self.recorded_call(&format!("wait.extendToken {id}"), || self.run.client.extend_token(id, timeout)).await
    }

    /// A token call recorded as a step named `name`. A refusal that would come again (400,
    /// 404, 409, 422: a bad request, no such token, a token that finished, an output that does
    /// not fit) is recorded too, `{"refused": {"status", "message", "code"?}}` as the TypeScript
    /// SDK records it, and returned again on replay: a run that handles it replays as it ran.
    async fn recorded_call<T, F, Fut>(&self, name: &str, call: F) -> Result<T>
    where
        T: Serialize + serde::de::DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let recorded = self
            .recorded(JournalKind::Step, name, || async {
                match call().await {
                    Ok(answer) => Ok(Recorded::Answer(answer)),
                    Err(Error::Api { status, message, code }) if REFUSALS.contains(&status) => {
                        Ok(Recorded::Refused { refused: Refusal { status, message, code } })
                    }
                    Err(error) => Err(error),
                }
            })
            .await?;
        match recorded {
            Recorded::Answer(answer) => Ok(answer),
            Recorded::Refused { refused: Refusal { status, message, code } } => {
                Err(Error::Api { status, message, code })
            }
        }
    }

    /// Retrieves `token` as it was at this point of the run (recorded, so replay sees the same).
    pub async fn retrieve_token(&self, token: impl AsTokenId) -> Result<Token> {
        let id = token.token_id();
        let detail: TokenDetail = self
            .recorded(JournalKind::RetrieveToken, id, || async {
                Ok::<_, Error>(self.run.client.retrieve_token(id).await?.detail)
            })
            .await?;
        Ok(Token { detail })
    }

    /// Every token matching `filter`, newest first, as [`Client::list_tokens`](crate::Client::list_tokens)
    /// lists them. Each page is recorded as it is fetched, so a replay reads the same tokens.
    pub fn list_tokens(&self, filter: ListFilter) -> impl Stream<Item = Result<TokenItem>> + '_ {
        paginate(move |after| {
            let filter = filter.clone();
            async move { self.list_tokens_page(&filter, after).await }
        })
    }

    pub(crate) async fn list_tokens_page(&self, filter: &ListFilter, after: Option<String>) -> Result<Page<TokenItem>> {
        let name = after.as_deref().unwrap_or("");
        self.recorded(JournalKind::ListTokens, name, || async {
            self.run.client.list_tokens_page(filter, after.as_deref()).await
        })
        .await
    }
}
