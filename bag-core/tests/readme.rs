//! README's training example is `examples/readme_train.rs` (which CI builds with the `torch`
//! feature): the README shows the example's code verbatim, so the two cannot drift apart.

#[test]
fn readme_shows_the_compiled_training_example_verbatim() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("examples/readme_train.rs")).unwrap();
    let begin = example.find("// README:begin\n").unwrap() + "// README:begin\n".len();
    let end = example.find("// README:end").unwrap();
    let code = &example[begin..end];
    let block = format!("```rust,no_run\n{code}```\n");
    assert!(
        readme.contains(&block),
        "README.md lacks the body of examples/readme_train.rs as a rust,no_run block:\n{block}"
    );
}
