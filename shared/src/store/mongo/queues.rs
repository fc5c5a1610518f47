//! The queues of MongoStore.

use super::*;

#[async_trait]
impl QueueStore for MongoStore {
    async fn upsert_queues(&self, queues: &BTreeMap<String, String>, now: Timestamp) -> Result<()> {
        for (name, description) in queues {
            self.queues()
                .update_one(
                    doc! {"name": name},
                    doc! {"$set": {"description": description, "updated_at": date(now)}},
                )
                .upsert(true)
                .await
                .map_err(|e| Error::backend("storing queues", e))?;
        }
        Ok(())
    }

    async fn list_queues(&self) -> Result<BTreeMap<String, String>> {
        let documents = collect_all(
            self.queues().find(doc! {"description": {"$exists": true}}),
            "reading queues",
        )
        .await?;
        Ok(documents
            .iter()
            .filter_map(|d| {
                Some((
                    d.get_str("name").ok()?.to_owned(),
                    d.get_str("description").ok()?.to_owned(),
                ))
            })
            .collect())
    }

    async fn set_images(
        &self,
        images: &BTreeMap<String, BTreeMap<String, String>>,
        _now: Timestamp,
    ) -> Result<()> {
        for (queue, map) in images {
            let map: Document = map
                .iter()
                .map(|(k, v)| (k.clone(), Bson::String(v.clone())))
                .collect();
            self.queues()
                .update_one(doc! {"name": queue}, doc! {"$set": {"images": map}})
                .upsert(true)
                .await
                .map_err(|e| Error::backend("storing images", e))?;
        }
        Ok(())
    }

    async fn get_images(&self, queue: &str) -> Result<BTreeMap<String, String>> {
        let document = self
            .queues()
            .find_one(doc! {"name": queue})
            .await
            .map_err(|e| Error::backend("reading images", e))?;
        Ok(document
            .as_ref()
            .and_then(|d| d.get_document("images").ok())
            .map(|images| {
                images
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default())
    }
}
