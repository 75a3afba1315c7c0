//! Webchat widgets and their security policies (spec §7).

use reqwest::Method;

use crate::models::{Items, Widget};
use crate::transport::Call;
use crate::{Client, Result};

/// The webchat widgets API (spec §7), from [`Client::webchat`].
#[derive(Clone, Copy)]
pub struct Webchat<'a> {
    pub(crate) client: &'a Client,
}

impl Webchat<'_> {
    /// Every widget with its settings.
    pub async fn list(self) -> Result<Vec<Widget>> {
        let c = Call::new(Method::GET, &["api", "v2", "webchat", "widgets"]);
        Ok(self
            .client
            .execute(c)
            .await?
            .decode::<Items<Widget>>("widget list")?
            .items)
    }

    /// A widget and its ETag.
    pub async fn get(self, id: &str) -> Result<(Widget, String)> {
        let r = self
            .client
            .execute(Call::new(
                Method::GET,
                &["api", "v2", "webchat", "widgets", id],
            ))
            .await?;
        let etag = r.etag().unwrap_or_default();
        Ok((r.decode("widget")?, etag))
    }

    /// Replaces the widget if it still has `etag`; returns it with its new ETag.
    pub async fn put(self, widget: &Widget, etag: &str) -> Result<(Widget, String)> {
        let c = Call::new(
            Method::PUT,
            &["api", "v2", "webchat", "widgets", &widget.id],
        )
        .if_match(etag)?
        .json(widget)?;
        let r = self.client.execute(c).await?;
        let new_etag = r.etag().unwrap_or_default();
        Ok((r.decode("widget")?, new_etag))
    }
}
