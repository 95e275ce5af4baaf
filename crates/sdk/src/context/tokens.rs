//! The token API inside a run: create, complete, retrieve and list, each recorded.

use futures_util::Stream;
use serde::Serialize;
use waitpoint_types::JournalKind;
use waitpoint_types::api::{CreateTokenRequest, CreateTokenResponse, Page, TokenDetail, TokenItem};

use super::journal::Begin;
use crate::client::{check_token_request, paginate};
use crate::error::decode;
use crate::{AsTokenId, Context, Error, ListFilter, Result, Token};

impl Context {
    /// Creates a waitpoint token, with the same options as
    /// [`Client::create_token`](crate::Client::create_token). On replay, the same token.
    pub async fn create_token(&self, request: CreateTokenRequest) -> Result<CreateTokenResponse> {
        check_token_request(&request)?;
        match self.begin(JournalKind::CreateToken, "").await? {
            Begin::Replayed(result) => decode(result, || "the recorded result of CREATE_TOKEN".into()),
            Begin::Live { mut cursor, seq } => {
                let response = self.run.client.run_token(&self.run.run_id, cursor.epoch, seq, request).await;
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
