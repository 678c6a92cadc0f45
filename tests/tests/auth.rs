//! URLs with an ACL user and password.

mod common;

use ff_engine::store::{cmd, RedisStore, RedisStoreOptions, Store};
use ff_engine::{Client, ExecutionSpec};
use ff_tests::RedisServer;
use std::sync::Arc;

#[tokio::test]
async fn acl_user_and_password_in_the_url() {
    let server = RedisServer::start();
    let admin = common::store(&server.url()).await;
    admin
        .command(&cmd([
            "ACL", "SETUSER", "ffuser", "on", ">s3cret", "~*", "&*", "+@all",
        ]))
        .await
        .unwrap();
    admin
        .command(&cmd(["CONFIG", "SET", "requirepass", "adminpw"]))
        .await
        .unwrap();

    let url = format!("redis://ffuser:s3cret@127.0.0.1:{}", server.port());
    let store = RedisStore::connect(&[url], RedisStoreOptions::default())
        .await
        .expect("ACL user connects");
    let c = Client::new(Arc::new(store)).await.unwrap();
    let eid = c.create(ExecutionSpec::new("job")).await.unwrap().execution;
    c.get(&eid).await.unwrap();

    let wrong = format!("redis://ffuser:nope@127.0.0.1:{}", server.port());
    let err = RedisStore::connect(&[wrong], RedisStoreOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("pass") || err.to_string().contains("WRONGPASS"),
        "{err}"
    );
    let store_default_user = RedisStore::connect(
        &[format!("redis://:adminpw@127.0.0.1:{}", server.port())],
        RedisStoreOptions::default(),
    )
    .await;
    assert!(
        store_default_user.is_ok(),
        "password-only URL (default user) connects"
    );
    let _ = store_default_user.unwrap().time_ms().await.unwrap();
}
