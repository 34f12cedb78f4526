fn main() {
    let paths: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    let c = policy_lang::check(&paths);
    for d in &c.diagnostics {
        let l = policy_lang::LocatedDiagnostic::new(d, &c.sources);
        let text = match d.span() {
            Some(s) => c
                .sources
                .get(s.file)
                .map(|f| f.slice(s).to_string())
                .unwrap_or_default(),
            None => String::new(),
        };
        println!(
            "{}:{}:{} {} {} [{}] help: {}",
            l.file,
            l.line,
            l.column,
            l.code,
            l.message,
            text.lines().next().unwrap_or(""),
            l.help
        );
    }
    println!("{:?}", c.summary);
}
