//! Snapshot tables for accepted and rejected plans, printer checks, and properties: printing a
//! random tree and parsing it back gives the same tree, and no input makes the parser panic.

use crate::{
    Arg, ArgValue, Block, CmpOp, Directive, DirectiveKind, Else, Expr, FnCall, If, InterpString,
    Operation, Param, Part, Plan, Pos, Predicate, SetScope, Sigil, Statement, StatementKind,
    StrKind, TargetKind, VarRef, parse, print,
};
use proptest::prelude::*;

// ------------------------------------------------------------------- a compact tree form

/// `(head item item ...)`, or `(head)` without items.
fn sexp(head: &str, items: impl IntoIterator<Item = String>) -> String {
    let mut out = format!("({head}");
    for item in items {
        out.push(' ');
        out.push_str(&item);
    }
    out.push(')');
    out
}

fn dump_plan(plan: &Plan) -> String {
    plan.body
        .statements
        .iter()
        .map(dump_statement)
        .collect::<Vec<_>>()
        .join(" ")
}

fn dump_block(block: &Block) -> String {
    sexp("block", block.statements.iter().map(dump_statement))
}

fn dump_statement(s: &Statement) -> String {
    let inner = match &s.kind {
        StatementKind::Operation(op) => {
            let name = match &op.namespace {
                Some(ns) => format!("op {ns}::{}", op.name),
                None => format!("op {}", op.name),
            };
            let positional = op.positional.iter().map(dump_expr);
            let args = op.args.iter().map(|arg| match &arg.value {
                ArgValue::Input(e) => format!("({}: {})", arg.name, dump_expr(e)),
                ArgValue::Output(v) => format!("({} => {v})", arg.name),
            });
            sexp(&name, positional.chain(args))
        }
        StatementKind::Set {
            scope,
            target,
            value,
        } => {
            let head = match scope {
                SetScope::Default => "set",
                SetScope::Local => "set local",
                SetScope::Global => "set global",
            };
            sexp(head, [target.to_string(), dump_expr(value)])
        }
        StatementKind::Block(block) => dump_block(block),
        StatementKind::With { directives, body } => {
            let directives = directives.iter().map(|d| match &d.kind {
                DirectiveKind::Async(None) => "(async)".to_owned(),
                DirectiveKind::Async(Some(name)) => format!("(async {name})"),
                DirectiveKind::Retry(e) => sexp("retry", [dump_expr(e)]),
                DirectiveKind::Timeout(e) => sexp("timeout", [dump_expr(e)]),
                DirectiveKind::Lock(e) => sexp("lock", [dump_expr(e)]),
                DirectiveKind::Unsupported(name) => format!("(unsupported {name})"),
            });
            sexp("with", directives.chain([dump_block(body)]))
        }
        StatementKind::Await(name) => sexp("await", name.clone()),
        StatementKind::If(branch) => dump_if(branch),
        StatementKind::Foreach { var, source, body } => sexp(
            "foreach",
            [var.to_string(), dump_expr(source), dump_block(body)],
        ),
        StatementKind::Target {
            kind,
            each,
            target,
            body,
        } => sexp(
            if *each {
                "foreach-target"
            } else {
                "for-target"
            },
            [kind.word().to_owned(), dump_expr(target), dump_block(body)],
        ),
        StatementKind::Unsupported { construct, body } => {
            sexp("unsupported", [format!("{construct:?}"), dump_block(body)])
        }
        StatementKind::Break => "(break)".to_owned(),
        StatementKind::Continue => "(continue)".to_owned(),
        StatementKind::Return => "(return)".to_owned(),
        StatementKind::Try { body, catch } => sexp("try", [dump_block(body), dump_block(catch)]),
        StatementKind::Throw(message) => sexp("throw", message.iter().map(dump_expr)),
        StatementKind::Fail => "(fail)".to_owned(),
        StatementKind::Error => "(error)".to_owned(),
        StatementKind::Warn => "(warn)".to_owned(),
        StatementKind::ForceWarn => "(force-warn)".to_owned(),
        StatementKind::ForceNormal => "(force-normal)".to_owned(),
        StatementKind::Module { name, params, body } => {
            let params = params.iter().map(|p| {
                sexp(
                    &p.var.to_string(),
                    p.default.iter().map(dump_expr).collect::<Vec<_>>(),
                )
            });
            sexp(&format!("module {name}"), params.chain([dump_block(body)]))
        }
        StatementKind::Call { name, args } => sexp(
            &format!("call {name}"),
            args.iter()
                .map(|(arg, value)| format!("({arg}: {})", dump_expr(value))),
        ),
    };
    match &s.description {
        Some(description) => sexp("desc", [format!("{description:?}"), inner]),
        None => inner,
    }
}

fn dump_if(branch: &If) -> String {
    let otherwise = branch.otherwise.as_deref().map(|e| match e {
        Else::If { branch, .. } => sexp("else", [dump_if(branch)]),
        Else::Block(block) => sexp("else", [dump_block(block)]),
    });
    sexp(
        "if",
        [dump_predicate(&branch.cond), dump_block(&branch.then)]
            .into_iter()
            .chain(otherwise),
    )
}

fn dump_predicate(p: &Predicate) -> String {
    match p {
        Predicate::Compare { left, op, right } => {
            let op = match op {
                CmpOp::Eq => "==",
                CmpOp::Ne => "!=",
            };
            sexp(op, [dump_expr(left), dump_expr(right)])
        }
        Predicate::And(a, b) => sexp("&&", [dump_predicate(a), dump_predicate(b)]),
        Predicate::Or(a, b) => sexp("||", [dump_predicate(a), dump_predicate(b)]),
        Predicate::Not(a) => sexp("!", [dump_predicate(a)]),
        Predicate::Value(e) => sexp("value", [dump_expr(e)]),
    }
}

fn dump_expr(e: &Expr) -> String {
    match e {
        Expr::Str(s) => {
            let head = match &s.kind {
                StrKind::Implicit => "implicit".to_owned(),
                StrKind::Double => "double".to_owned(),
                StrKind::Single => "single".to_owned(),
                StrKind::Swim { sentinel } => format!("swim {sentinel:?}"),
            };
            sexp(
                &head,
                s.parts.iter().map(|part| match part {
                    Part::Text(t) => format!("{t:?}"),
                    Part::Var(v) => v.to_string(),
                    Part::Expr(e) => dump_expr(e),
                }),
            )
        }
        Expr::List(items) => sexp("list", items.iter().map(dump_expr)),
        Expr::Map(entries) => sexp(
            "map",
            entries
                .iter()
                .map(|(k, v)| format!("({k:?} {})", dump_expr(v))),
        ),
        Expr::Var(v) => v.to_string(),
        Expr::Index { target, index } => sexp("index", [target.to_string(), dump_expr(index)]),
        Expr::Call(call) => sexp(
            &format!("fn {}{}", call.sigil.as_char(), call.name),
            call.args.iter().map(dump_expr),
        ),
    }
}

// ------------------------------------------------------------------- checks

/// Parses `input` and compares the compact form of its tree with `expect`.
#[track_caller]
fn check(input: &str, expect: &str) {
    match parse(input) {
        Ok(plan) => assert_eq!(dump_plan(&plan), expect, "input: {input:?}"),
        Err(diags) => panic!("input: {input:?}\nunexpected diagnostics:\n{diags}"),
    }
}

/// Parses `input`, which must fail, and compares the diagnostics (one per line) with `expect`.
#[track_caller]
fn check_err(input: &str, expect: &str) {
    match parse(input) {
        Ok(plan) => panic!(
            "input: {input:?}\nunexpectedly parsed: {}",
            dump_plan(&plan)
        ),
        Err(diags) => assert_eq!(diags.to_string(), expect, "input: {input:?}"),
    }
}

/// Parses `input` and compares the printed plan with `expect`.
#[track_caller]
fn check_print(input: &str, expect: &str) {
    let plan = parse(input).unwrap_or_else(|d| panic!("input: {input:?}\n{d}"));
    assert_eq!(print(&plan), expect, "input: {input:?}");
}

// ------------------------------------------------------------------- accepted plans

#[test]
#[rustfmt::skip]
fn operations() {
    check("", "");
    check("Log-Information hello;", r#"(op Log-Information (implicit "hello"))"#);
    check("log-information   hello world  ;", r#"(op log-information (implicit "hello world"))"#);
    check(r#"Log-Debug "text";"#, r#"(op Log-Debug (double "text"))"#);
    check("Log-Warning 'it`'s';", r#"(op Log-Warning (single "it's"))"#);
    check("Sleep 5;", r#"(op Sleep (implicit "5"))"#);
    check("Sleep;", "(op Sleep)");
    check("Exec;", "(op Exec)");
    check("InedoCore::Exec /bin/true;", r#"(op InedoCore::Exec (implicit "/bin/true"))"#);
    check("Exec /bin/echo (Arguments: hello world, WorkingDirectory: /tmp);", r#"(op Exec (implicit "/bin/echo") (Arguments: (implicit "hello world")) (WorkingDirectory: (implicit "/tmp")))"#);
    check("Exec (FileName: ls);", r#"(op Exec (FileName: (implicit "ls")))"#);
    check("Exec ();", "(op Exec)");
    check("Get-Thing x (Output => $out);", r#"(op Get-Thing (implicit "x") (Output => $out))"#);
    check("Get-Thing (Output => @list, A: 1,);", r#"(op Get-Thing (Output => @list) (A: (implicit "1")))"#);
    check("Exec\n(\n    # the program\n    FileName: ls,\n    Arguments: -la\n);", r#"(op Exec (FileName: (implicit "ls")) (Arguments: (implicit "-la")))"#);
    check("SHExec >>echo hi>>;", r#"(op SHExec (swim ">>" "echo hi"))"#);
    check("SHExec >>\necho a > b\n>>;", r#"(op SHExec (swim ">>" "\necho a > b\n"))"#);
    check("SHExec >-->echo a >> b>-->;", r#"(op SHExec (swim ">-->" "echo a >> b"))"#);
    check("Log-Information issue #5 // fixed;", r##"(op Log-Information (implicit "issue #5 // fixed"))"##);
    check("Log-Information [%s] 50%;", r#"(op Log-Information (implicit "[%s] 50%"))"#);
    check("Log-Information a, b: c;", r#"(op Log-Information (implicit "a, b: c"))"#);
}

#[test]
#[rustfmt::skip]
fn strings() {
    check("Log-Information $x;", "(op Log-Information $x)");
    check("Log-Information ${x};", "(op Log-Information $x)");
    check("Log-Information a $x b;", r#"(op Log-Information (implicit "a " $x " b"))"#);
    check("Log-Information ${x}y;", r#"(op Log-Information (implicit $x "y"))"#);
    check("Log-Information $x-y.txt;", r#"(op Log-Information (implicit $x-y ".txt"))"#);
    check(r#"Log-Information "$x";"#, "(op Log-Information (double $x))");
    check(r#"Log-Information "  two  spaces  ";"#, r#"(op Log-Information (double "  two  spaces  "))"#);
    check("Log-Information 'single $x';", r#"(op Log-Information (single "single " $x))"#);
    check(r#"Log-Information "a`$b`nc`td``e`"f";"#, r#"(op Log-Information (double "a$b\nc\td`e\"f"))"#);
    check("Log-Information `@list;", r#"(op Log-Information (implicit "@list"))"#);
    check("Log-Information `%map;", r#"(op Log-Information (implicit "%map"))"#);
    check("Log-Information a`;b;", r#"(op Log-Information (implicit "a;b"))"#);
    check("Log-Information `  padded` ;", r#"(op Log-Information (implicit "  padded "))"#);
    check("Log-Information $ToUpper($x);", "(op Log-Information (fn $ToUpper $x))");
    check("Log-Information $ToUpper(a b, c);", r#"(op Log-Information (fn $ToUpper (implicit "a b") (implicit "c")))"#);
    check("Log-Information $ExecutionState;", "(op Log-Information $ExecutionState)");
    check("Log-Information $Fn();", "(op Log-Information (fn $Fn))");
    check(r#"Log-Information "v: $ToUpper($x)!";"#, r#"(op Log-Information (double "v: " (fn $ToUpper $x) "!"))"#);
    check(r#"Log-Information "$(@list[1])";"#, r#"(op Log-Information (double (index @list (implicit "1"))))"#);
    check(r#"Log-Information "$(%map[k])";"#, r#"(op Log-Information (double (index %map (implicit "k"))))"#);
    check(r#"Log-Information "$Count(@l) items";"#, r#"(op Log-Information (double (fn $Count @l) " items"))"#);
    check(r#"Log-Information "$Fn("a, b", 'c')";"#, r#"(op Log-Information (double (fn $Fn (double "a, b") (single "c"))))"#);
    check("Log-Information $x $y;", r#"(op Log-Information (implicit $x " " $y))"#);
    check("Log-Information >>a\n  $x\n>>;", r#"(op Log-Information (swim ">>" "a\n  " $x "\n"))"#);
    check("Log-Information >>a `>> b>>;", r#"(op Log-Information (swim ">>" "a >> b"))"#);
    check("Log-Information >x>>>x>;", r#"(op Log-Information (swim ">x>" ">"))"#);
    check("Log-Information >a b>;", r#"(op Log-Information (implicit ">a b>"))"#);
    check("Log-Information é$x€;", r#"(op Log-Information (implicit "é" $x "€"))"#);
}

#[test]
#[rustfmt::skip]
fn values() {
    check("set $x = 1;", r#"(set $x (implicit "1"))"#);
    check("SET LOCAL $X = a b;", r#"(set local $X (implicit "a b"))"#);
    check("set global ${x} = $y;", "(set global $x $y)");
    check("set @l = @(a, b c, $x);", r#"(set @l (list (implicit "a") (implicit "b c") $x))"#);
    check("set @l = @();", "(set @l (list))");
    check("set @l = @(\n  a,\n  b,\n);", r#"(set @l (list (implicit "a") (implicit "b")))"#);
    check("set @l = @(@(a), %(k: v));", r#"(set @l (list (list (implicit "a")) (map ("k" (implicit "v")))))"#);
    check("set %m = %(k: v, \"two words\": 2, k-3.x: $y);", r#"(set %m (map ("k" (implicit "v")) ("two words" (implicit "2")) ("k-3.x" $y)))"#);
    check("set %m = %();", "(set %m (map))");
    check("set $x = @l[0];", r#"(set $x (index @l (implicit "0")))"#);
    check("set $x = %m[$k];", "(set $x (index %m $k))");
    check("set $x = %m[two words];", r#"(set $x (index %m (implicit "two words")))"#);
    check("set $x = $y[0];", r#"(set $x (implicit $y "[0]"))"#);
    check("set $x = @l[@m[0]];", r#"(set $x (index @l (index @m (implicit "0"))))"#);
    check("set @r = @Range(1, 3);", r#"(set @r (fn @Range (implicit "1") (implicit "3")))"#);
    check("set $x = $Trim( a );", r#"(set $x (fn $Trim (implicit "a")))"#);
    check("set $x = $(@l);", "(set $x (implicit @l))");
    check("set $x = \"\";", "(set $x (double))");
    check("set $x = 'a' ;", r#"(set $x (single "a"))"#);
    check("set $x = a = b;", r#"(set $x (implicit "a = b"))"#);
    check("set $x =\n  value;", r#"(set $x (implicit "value"))"#);
    check("set $x = @;", r#"(set $x (implicit "@"))"#);
    check("set $x = 100%;", r#"(set $x (implicit "100%"))"#);
    check("global $g = 1; global $h = 2; Log-Information $g;", r#"(set global $g (implicit "1")) (set global $h (implicit "2")) (op Log-Information $g)"#);
}

#[test]
#[rustfmt::skip]
fn blocks_and_control() {
    check("{ }", "(block)");
    check("{ Log-Information a; { Log-Information b; } }", r#"(block (op Log-Information (implicit "a")) (block (op Log-Information (implicit "b"))))"#);
    check("with async { Sleep 1; }", r#"(with (async) (block (op Sleep (implicit "1"))))"#);
    check("with async=first { }", "(with (async first) (block))");
    check("With Retry = 3, TIMEOUT=30, lock=db { }", r#"(with (retry (implicit "3")) (timeout (implicit "30")) (lock (implicit "db")) (block))"#);
    check("with retry=$n { }", "(with (retry $n) (block))");
    check("with credentials=Admin { }", "(with (unsupported credentials) (block))");
    check("with isolation, executionPolicy=AlwaysExecute { }", "(with (unsupported isolation) (unsupported executionPolicy) (block))");
    check("await;", "(await)");
    check("await first;", "(await first)");
    check("foreach $item in @list { Log-Information $item; }", "(foreach $item @list (block (op Log-Information $item)))");
    check("foreach $i in @(a, b) { break; continue; }", r#"(foreach $i (list (implicit "a") (implicit "b")) (block (break) (continue)))"#);
    check("foreach $i in @Range(0, 3) { }", r#"(foreach $i (fn @Range (implicit "0") (implicit "3")) (block))"#);
    check("foreach server in @(a, b) { Sleep 1; }", r#"(foreach-target server (list (implicit "a") (implicit "b")) (block (op Sleep (implicit "1"))))"#);
    check("for role web { }", r#"(for-target role (implicit "web") (block))"#);
    check("for directory /tmp { }", r#"(unsupported "for directory" (block))"#);
    check("for Directory { }", r#"(unsupported "for directory" (block))"#);
    check("try { fail; } catch { warn; }", "(try (block (fail)) (block (warn)))");
    check("try { } # note\ncatch { force normal; }", "(try (block) (block (force-normal)))");
    check("throw;", "(throw)");
    check("throw something broke;", r#"(throw (implicit "something broke"))"#);
    check(r#"throw "quoted";"#, r#"(throw (double "quoted"))"#);
    check("error; warn; force warn; Force Normal; return;", "(error) (warn) (force-warn) (force-normal) (return)");
    check("module Deploy<$a, @b, $c = default value> { Log-Information $a; }", r#"(module Deploy ($a) (@b) ($c (implicit "default value")) (block (op Log-Information $a)))"#);
    check("module M { }", "(module M (block))");
    check("module M<> { }", "(module M (block))");
    check("call Deploy(a: 1, c: two words);", r#"(call Deploy (a: (implicit "1")) (c: (implicit "two words")))"#);
    check("call Deploy();", "(call Deploy)");
    check("call Deploy;", "(call Deploy)");
    check("call Lib::Deploy(a: $x);", "(call Lib::Deploy (a: $x))");
    check("set::Thing;", "(op set::Thing)");
}

#[test]
#[rustfmt::skip]
fn conditions() {
    check("if $x == abc { }", r#"(if (== $x (implicit "abc")) (block))"#);
    check("if $x != a b && !$flag { }", r#"(if (&& (!= $x (implicit "a b")) (! (value $flag))) (block))"#);
    check("if true { }", r#"(if (value (implicit "true")) (block))"#);
    check("if a || b && c { }", r#"(if (|| (value (implicit "a")) (&& (value (implicit "b")) (value (implicit "c")))) (block))"#);
    check("if (a || b) && c { }", r#"(if (&& (|| (value (implicit "a")) (value (implicit "b"))) (value (implicit "c"))) (block))"#);
    check("if a && b && c { }", r#"(if (&& (&& (value (implicit "a")) (value (implicit "b"))) (value (implicit "c"))) (block))"#);
    check("if !a == b { }", r#"(if (! (== (implicit "a") (implicit "b"))) (block))"#);
    check("if !!a { }", r#"(if (! (! (value (implicit "a")))) (block))"#);
    check("if !($a) { }", "(if (! (value $a)) (block))");
    check(r#"if "$x" == "" { }"#, "(if (== (double $x) (double)) (block))");
    check("if $ToLower($x) == yes! { }", r#"(if (== (fn $ToLower $x) (implicit "yes!")) (block))"#);
    check("if $x == a=b { }", r#"(if (== $x (implicit "a=b")) (block))"#);
    check("if $x == 1 { } else { Log-Information no; }", r#"(if (== $x (implicit "1")) (block) (else (block (op Log-Information (implicit "no")))))"#);
    check("if $x == 1 { } else if $x == 2 { } else { }", r#"(if (== $x (implicit "1")) (block) (else (if (== $x (implicit "2")) (block) (else (block)))))"#);
    check("IF $x {} ELSE IF $y {}", "(if (value $x) (block) (else (if (value $y) (block))))");
    check("if $x { }\n# next\nLog-Information a;", r#"(if (value $x) (block)) (desc "next" (op Log-Information (implicit "a")))"#);
}

#[test]
#[rustfmt::skip]
fn descriptions() {
    check("# Say hello\nLog-Information hello;", r#"(desc "Say hello" (op Log-Information (implicit "hello")))"#);
    check("// first\n#   second  \n{ }", r#"(desc "first\nsecond" (block))"#);
    check("/* a block\n   comment */\nSleep 1;", r#"(desc "a block\ncomment" (op Sleep (implicit "1")))"#);
    check("/* inline */ Sleep 1;", r#"(desc "inline" (op Sleep (implicit "1")))"#);
    check("# detached\n\nSleep 1;", r#"(op Sleep (implicit "1"))"#);
    check("# one\n\n# two\nSleep 1;", r#"(desc "two" (op Sleep (implicit "1")))"#);
    check("Sleep 1; # trailing\nSleep 2;", r#"(op Sleep (implicit "1")) (op Sleep (implicit "2"))"#);
    check("##AH:UseTextMode\nSleep 1;", r#"(op Sleep (implicit "1"))"#);
    check("# above header\n##AH:UseTextMode\nSleep 1;", r#"(op Sleep (implicit "1"))"#);
    check("##AH:UseTextMode\n# General\n{\n    # inner\n    Sleep 1;\n}", r#"(desc "General" (block (desc "inner" (op Sleep (implicit "1")))))"#);
    check("# a\n#\n# b\nSleep 1;", r#"(desc "a\n\nb" (op Sleep (implicit "1")))"#);
    check("#\nSleep 1;", r#"(op Sleep (implicit "1"))"#);
    check("{ Sleep 1;\n  # dangling\n}", r#"(block (op Sleep (implicit "1")))"#);
    check("\u{feff}# bom\r\nSleep 1;\r\n", r#"(desc "bom" (op Sleep (implicit "1")))"#);
}

#[test]
fn positions() {
    fn collect(block: &Block, out: &mut Vec<String>) {
        for s in &block.statements {
            out.push(format!("{}:{}", s.pos.line, s.pos.column));
            match &s.kind {
                StatementKind::Operation(op) => {
                    out.push(format!("op@{}:{}", op.pos.line, op.pos.column));
                }
                StatementKind::With { directives, body } => {
                    for d in directives {
                        out.push(format!("dir@{}:{}", d.pos.line, d.pos.column));
                    }
                    collect(body, out);
                }
                StatementKind::If(branch) => {
                    collect(&branch.then, out);
                    if let Some(Else::If { pos, .. }) = branch.otherwise.as_deref() {
                        out.push(format!("elseif@{}:{}", pos.line, pos.column));
                    }
                }
                StatementKind::Block(body) => collect(body, out),
                _ => {}
            }
        }
    }
    #[track_caller]
    fn check_pos(input: &str, expect: &str) {
        let plan = parse(input).unwrap_or_else(|d| panic!("{d}"));
        let mut out = Vec::new();
        collect(&plan.body, &mut out);
        assert_eq!(out.join(" "), expect);
    }
    check_pos("Sleep 1;\n  InedoCore::Exec x;", "1:1 op@1:1 2:3 op@2:3");
    check_pos(
        "# d\n\t{ Log-Information ééé; Sleep 1; }",
        "2:2 2:4 op@2:4 2:25 op@2:25",
    );
    check_pos(
        "with async,\n  retry=2 {\n  Sleep 1;\n}",
        "1:1 dir@1:6 dir@2:3 3:3 op@3:3",
    );
    check_pos("if a {\n} else  if b { }", "1:1 elseif@2:9");
    check_pos("{\n    # d\n    Sleep 1;\n}", "1:1 3:5 op@3:5");
}

#[test]
fn helpers() {
    let plan = parse("log-INFORMATION a (Arg: \"lit\", Other: a$x);").expect("parses");
    let StatementKind::Operation(op) = &plan.body.statements[0].kind else {
        panic!("not an operation");
    };
    assert!(op.name_matches("Log-Information"));
    assert!(!op.name_matches("Log-Info"));
    let Some(ArgValue::Input(Expr::Str(lit))) = op.arg("arg") else {
        panic!("no Arg");
    };
    assert!(lit.is_literal());
    assert_eq!(lit.literal().as_deref(), Some("lit"));
    let Some(ArgValue::Input(Expr::Str(interp))) = op.arg("OTHER") else {
        panic!("no Other");
    };
    assert!(!interp.is_literal());
    assert_eq!(interp.literal(), None);
    let var = VarRef {
        sigil: Sigil::List,
        name: "MyList".to_owned(),
    };
    assert_eq!(var.key(), "mylist");
    assert_eq!(var.to_string(), "@MyList");
    let diags = parse("x").expect_err("fails");
    assert_eq!(diags.0[0].pos, Pos { line: 1, column: 2 });
    let as_error: &dyn std::error::Error = &diags;
    assert_eq!(
        as_error.to_string(),
        "line 1, column 2: expected `;` after operation, found end of input"
    );
}

// ------------------------------------------------------------------- rejected plans

#[test]
#[rustfmt::skip]
fn rejected() {
    check_err("Log-Information hello", "line 1, column 22: expected `;` after operation, found end of input");
    check_err("{ set $x = 1 }", "line 1, column 14: expected `;` after statement, found `}`");
    check_err("Log-Information a\nLog-Information b;", "line 2, column 1: expected `;` after operation, found `Log-Information`");
    check_err("Log-Information \"abc;\nSleep 1;", "line 1, column 17: unterminated string starting here");
    check_err("Log-Information 'abc", "line 1, column 17: unterminated string starting here");
    check_err("SHExec >>\necho;\n", "line 1, column 8: unterminated swim string starting here, expected a closing `>>`");
    check_err("with foo { Sleep 1; }", "line 1, column 6: unknown directive `foo`");
    check_err("with retry { }", "line 1, column 12: expected `=` after `retry`, found `{`");
    check_err("with async Sleep 1;", "line 1, column 12: expected `,` or `{` after the directive, found `Sleep`");
    check_err(&format!("set ${} = 1;", "a".repeat(51)), "line 1, column 5: variable name longer than 50 characters");
    check_err(&format!("Log-Information \"${}\";", "b".repeat(51)), "line 1, column 18: variable name longer than 50 characters");
    check_err("Sleep 1;\nglobal $x = 1;", "line 2, column 1: `global` declarations must come before any other statement of the plan");
    check_err("{ global $x = 1; }", "line 1, column 3: `global` declarations must come before any other statement of the plan");
    check_err("set x = 1;", "line 1, column 5: expected a variable after `set`, found `x`");
    check_err("set $x 1;", "line 1, column 8: expected `=` after `$x`, found `1`");
    check_err("set $x = ;", "line 1, column 10: expected a value, found `;`");
    check_err("Log-Information cost: 5$;", "line 1, column 24: expected a variable name after `$` (write `` `$ `` for a literal `$`), found `;`");
    check_err("Log-Information ${x;", "line 1, column 20: expected `}` after the variable name, found `;`");
    check_err("Log-Information $(@l[0];", "line 1, column 24: expected `)` to close `$(`, found `;`");
    check_err("set $x = @l[0;", "line 1, column 15: expected `]` after the index, found end of input");
    check_err("set @l = @(a b c;", "line 1, column 18: expected `,` or `)` in the list, found end of input");
    check_err("set %m = %(a);", "line 1, column 13: expected `:` after the map key, found `)`");
    check_err("set %m = %(\"$k\": 1);", "line 1, column 12: a map key cannot contain variables");
    check_err("set $x = @list and more;", "line 1, column 16: expected `;` after statement, found `and`");
    check_err("Exec (Arguments);", "line 1, column 16: expected `:` or `=>` after argument `Arguments`, found `)`");
    // An unquoted positional value ends at `(`, which opens the argument list.
    check_err("Log-Information Done (all);", "line 1, column 26: expected `:` or `=>` after argument `all`, found `)`");
    check_err("Exec (: x);", "line 1, column 7: expected an argument name, found `:`");
    check_err("Exec (A: \"x\" B: y);", "line 1, column 14: expected `,` or `)` after the argument, found `B`");
    check_err("Exec (Out => x);", "line 1, column 14: expected a variable after `=>`, found `x`");
    check_err("if $x == { }", "line 1, column 10: expected a value, found `{`");
    check_err("if ($x { }", "line 1, column 8: expected `)` to close `(`, found `{`");
    check_err("if $x Sleep 1;", "line 1, column 15: expected `{` after the condition, found end of input");
    check_err("if $x { } else Sleep 1;", "line 1, column 16: expected `{` or `if` after `else`, found `Sleep`");
    check_err("else { }", "line 1, column 1: `else` without a matching `if`");
    check_err("catch { }", "line 1, column 1: `catch` without a matching `try`");
    check_err("try { } Sleep 1;", "line 1, column 9: expected `catch` after the `try` block, found `Sleep`");
    check_err("foreach item in @l { }", "line 1, column 9: expected a variable after `foreach`, found `item`");
    check_err("foreach $i of @l { }", "line 1, column 12: expected `in` after the loop variable, found `of`");
    check_err("for host x { }", "line 1, column 5: expected `server`, `role` or `directory` after `for`, found `host`");
    check_err("force quit;", "line 1, column 7: expected `warn` or `normal` after `force`, found `quit`");
    check_err("module { }", "line 1, column 8: expected a module name after `module`, found `{`");
    check_err("module M<$a $b> { }", "line 1, column 13: expected `,` or `>` after the module parameter, found `$b`");
    check_err("call M(a 1);", "line 1, column 10: expected `:` after argument `a`, found `1`");
    check_err("{ Sleep 1;", "line 1, column 11: expected `}` to close the block opened at line 1, column 1, found end of input");
    check_err("}", "line 1, column 1: expected a statement, found `}`");
    check_err(";", "line 1, column 1: expected a statement, found `;`");
    check_err("$x = 1;", "line 1, column 1: expected a statement, found `$x`");
    check_err("/* open", "line 1, column 1: unterminated comment starting here");
    check_err("Log-Information a`", "line 1, column 19: expected a character after the escape backtick, found end of input");
    check_err("Exec::;", "line 1, column 7: expected an operation name after `::`, found `;`");
}

#[test]
fn rejected_reports_every_error() {
    check_err(
        "Log-Information a\n\
         Sleep 1;\n\
         set $x = ;\n\
         if $x == 1 {\n\
         \x20   Log-Information \"open;\n\
         \x20   Sleep 1;\n\
         \x20   warn\n\
         }\n\
         with bogus, retry=2 { fail; }\n\
         Log-Information done",
        "line 2, column 1: expected `;` after operation, found `Sleep`\n\
         line 3, column 10: expected a value, found `;`\n\
         line 5, column 21: unterminated string starting here\n\
         line 8, column 1: expected `;` after statement, found `}`\n\
         line 9, column 6: unknown directive `bogus`\n\
         line 10, column 21: expected `;` after operation, found end of input",
    );
    // A broken `if` header skips its whole block, and the `else` that continues it.
    check_err(
        "if == { Sleep 1; } else { Sleep 2; }\nSleep x\n",
        "line 1, column 4: expected a value, found `==`\n\
         line 3, column 1: expected `;` after operation, found end of input",
    );
}

/// The stack of the thread the nesting test runs on: half of a thread's default, so a parser
/// that recursed with its input (100,000 levels) rather than up to its limit would overflow it.
const SMALL_STACK: usize = 1024 * 1024;

#[test]
fn deep_nesting_is_an_error_not_a_crash_even_on_a_small_stack() {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(deep_nesting_is_an_error_not_a_crash)
        .unwrap()
        .join()
        .unwrap();
}

fn deep_nesting_is_an_error_not_a_crash() {
    // (before, repeated opening, middle, repeated closing, after)
    let shapes = [
        ("", "{", "", "}", ""),
        ("if ", "(", "a", ")", " {}"),
        ("if ", "!", "a", "", " {}"),
        ("if a {} ", "else if a {} ", "", "", ""),
        ("set $x = ", "@(", "a", ")", ";"),
        ("set $x = ", "@l[", "0", "]", ";"),
        ("Log-Information ", "\"$Fn(", "a", ")\"", ";"),
        ("Log-Information ", "$(", "a", ")", ";"),
        ("Log-Information >>", "$(", "a", ")", ">>;"),
        ("module M { ", "{ ", "", "}", " }"),
        ("with retry=1 ", "{ with retry=1 ", "{ }", "}", ""),
    ];
    for (before, open, middle, close, after) in shapes {
        let nest = |n: usize| {
            format!(
                "{before}{}{middle}{}{after}",
                open.repeat(n),
                close.repeat(n)
            )
        };
        // Within the limit: parses, without exhausting a test thread's stack.
        if let Err(d) = parse(&nest(60)) {
            panic!("{open}: {d}");
        }
        let diags = parse(&nest(100_000)).expect_err("too deep");
        assert!(
            diags
                .0
                .iter()
                .any(|d| d.message.starts_with("nesting too deep")),
            "{open}: {diags}"
        );
    }
}

// ------------------------------------------------------------------- the printer

#[test]
#[rustfmt::skip]
fn printer() {
    check_print("log-information   hello;", "log-information hello;\n");
    check_print("# General\n{ Exec /bin/ls (Arguments: -la); set local $x = @(a, %(k: v)); }", "# General\n{\n    Exec /bin/ls (Arguments: -la);\n    set local $x = @(a, %(k: v));\n}\n");
    check_print("global $x = 1;", "set global $x = 1;\n");
    check_print("Log-Information ${x}y $x;", "Log-Information ${x}y $x;\n");
    check_print("Log-Information `  a`;b` ;", "Log-Information `  a`;b` ;\n");
    check_print("Log-Information `@x;", "Log-Information `@x;\n");
    check_print(r#"Log-Information "a`nb`"c";"#, "Log-Information \"a`nb`\"c\";\n");
    check_print("SHExec >>\necho `>> x\n>>;", "SHExec >>\necho `>> x\n>>;\n");
    check_print("if (a || b) && !(c && d) { } else if e { } else { fail; }", "if (a || b) && !(c && d) { } else if e { } else {\n    fail;\n}\n");
    check_print("if a || (b || c) { }", "if a || (b || c) { }\n");
    check_print("with async=x, retry=2, credentials=me { }", "with async=x, retry=2, credentials { }\n");
    check_print("for server web01 { }", "for server web01 { }\n");
    check_print("foreach role in @(a) { }", "foreach role in @(a) { }\n");
    check_print("for directory /tmp { }", "for directory ... { }\n");
    check_print("module M<$a, $b = x> { } call M(a: 1);", "module M<$a, $b = x> { }\ncall M(a: 1);\n");
    check_print("Exec /usr/local/bin/some-long-program (Arguments: --one --two --three, WorkingDirectory: /var/lib/somewhere, SuccessExitCode: 0);", "Exec /usr/local/bin/some-long-program (\n    Arguments: --one --two --three,\n    WorkingDirectory: /var/lib/somewhere,\n    SuccessExitCode: 0\n);\n");
    check_print("set %m = %(\"a b\": 1, '': 2);", "set %m = %(\"a b\": 1, \"\": 2);\n");
    check_print("Log-Information \"$(@l[0])$Fn($x)\";", "Log-Information \"$(@l[0])$Fn($x)\";\n");
}

// ------------------------------------------------------------------- properties

/// Sets every position in the tree to 0:0, so that trees parsed from different layouts compare.
fn strip_positions(plan: &mut Plan) {
    fn block(b: &mut Block) {
        for s in &mut b.statements {
            statement(s);
        }
    }
    fn branch(i: &mut If) {
        block(&mut i.then);
        match i.otherwise.as_deref_mut() {
            None => {}
            Some(Else::If { pos, branch: inner }) => {
                *pos = ZERO;
                branch(inner);
            }
            Some(Else::Block(b)) => block(b),
        }
    }
    fn statement(s: &mut Statement) {
        s.pos = ZERO;
        match &mut s.kind {
            StatementKind::Operation(op) => op.pos = ZERO,
            StatementKind::With { directives, body } => {
                for d in directives {
                    d.pos = ZERO;
                }
                block(body);
            }
            StatementKind::If(i) => branch(i),
            StatementKind::Block(body)
            | StatementKind::Foreach { body, .. }
            | StatementKind::Unsupported { body, .. }
            | StatementKind::Target { body, .. }
            | StatementKind::Module { body, .. } => block(body),
            StatementKind::Try { body, catch } => {
                block(body);
                block(catch);
            }
            StatementKind::Set { .. }
            | StatementKind::Await(_)
            | StatementKind::Break
            | StatementKind::Continue
            | StatementKind::Return
            | StatementKind::Throw(_)
            | StatementKind::Fail
            | StatementKind::Error
            | StatementKind::Warn
            | StatementKind::ForceWarn
            | StatementKind::ForceNormal
            | StatementKind::Call { .. } => {}
        }
    }
    block(&mut plan.body);
}

const ZERO: Pos = Pos { line: 0, column: 0 };

const KEYWORDS: &[&str] = &[
    "set", "global", "with", "await", "if", "else", "foreach", "for", "try", "catch", "throw",
    "fail", "error", "warn", "force", "module", "call", "break", "continue", "return",
];

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_-]{0,6}"
}

fn operation_name() -> impl Strategy<Value = String> {
    name().prop_filter("not a keyword", |n| {
        !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(n))
    })
}

/// Text with every character that needs care somewhere: quotes, backticks, `$`, terminators,
/// `>`, whitespace of several kinds, and a few non-ASCII characters.
fn text() -> impl Strategy<Value = String> {
    "[ -~\t\n\r\u{a0}é€]{1,6}"
}

fn sigil() -> impl Strategy<Value = Sigil> {
    prop_oneof![Just(Sigil::Scalar), Just(Sigil::List), Just(Sigil::Map)]
}

fn var(sigil: impl Strategy<Value = Sigil>) -> impl Strategy<Value = VarRef> {
    (sigil, name()).prop_map(|(sigil, name)| VarRef { sigil, name })
}

fn str_kind() -> impl Strategy<Value = StrKind> {
    prop_oneof![
        Just(StrKind::Implicit),
        Just(StrKind::Double),
        Just(StrKind::Single),
        Just(StrKind::Swim {
            sentinel: ">>".to_owned()
        }),
        "[-=*~a-z;:]{1,5}".prop_map(|extra| StrKind::Swim {
            sentinel: format!(">{extra}>")
        }),
    ]
}

/// Brings generated parts into the shape the parser produces (see [`InterpString`]).
fn normalize(kind: StrKind, parts: Vec<Part>) -> Expr {
    let mut out: Vec<Part> = Vec::new();
    for part in parts {
        match (out.last_mut(), part) {
            (_, Part::Text(t)) if t.is_empty() => {}
            (Some(Part::Text(prev)), Part::Text(t)) => prev.push_str(&t),
            (_, part) => out.push(part),
        }
    }
    if kind == StrKind::Implicit {
        let lone = match out.as_slice() {
            [] | [Part::Var(_)] => true,
            [Part::Expr(Expr::Call(call))] => call.sigil == Sigil::Scalar,
            _ => false,
        };
        if lone {
            out.push(Part::Text("x".to_owned()));
        }
    }
    Expr::Str(InterpString { kind, parts: out })
}

fn expr() -> BoxedStrategy<Expr> {
    let leaf = prop_oneof![
        (str_kind(), text()).prop_map(|(kind, t)| normalize(kind, vec![Part::Text(t)])),
        var(sigil()).prop_map(Expr::Var),
    ];
    leaf.prop_recursive(3, 24, 3, |inner| {
        let part = prop_oneof![
            text().prop_map(Part::Text),
            name().prop_map(|name| Part::Var(VarRef {
                sigil: Sigil::Scalar,
                name
            })),
            inner.clone().prop_map(Part::Expr),
        ];
        let key = prop_oneof!["[A-Za-z0-9_.-]{1,5}", "[ -~]{0,5}"];
        prop_oneof![
            (str_kind(), prop::collection::vec(part, 0..4))
                .prop_map(|(kind, parts)| normalize(kind, parts)),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Expr::List),
            prop::collection::vec((key, inner.clone()), 0..3).prop_map(Expr::Map),
            (
                var(prop_oneof![Just(Sigil::List), Just(Sigil::Map)]),
                inner.clone()
            )
                .prop_map(|(target, index)| Expr::Index {
                    target,
                    index: Box::new(index)
                }),
            (sigil(), name(), prop::collection::vec(inner, 0..3))
                .prop_map(|(sigil, name, args)| Expr::Call(FnCall { sigil, name, args })),
        ]
    })
    .boxed()
}

fn predicate() -> impl Strategy<Value = Predicate> {
    let op = prop_oneof![Just(CmpOp::Eq), Just(CmpOp::Ne)];
    let leaf = prop_oneof![
        (expr(), op, expr()).prop_map(|(left, op, right)| Predicate::Compare { left, op, right }),
        expr().prop_map(Predicate::Value),
    ];
    leaf.prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Predicate::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Predicate::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Predicate::Not(Box::new(a))),
        ]
    })
}

/// A description as the parser produces it: trimmed lines, the first and last not empty.
fn description() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::collection::vec("[ -~]{0,10}", 1..3)).prop_map(|lines| {
        let lines: Vec<&str> = lines
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|l| l.trim())
            .collect();
        let first = lines.iter().position(|l| !l.is_empty())?;
        let last = lines.iter().rposition(|l| !l.is_empty())?;
        Some(lines[first..=last].join("\n"))
    })
}

fn simple_statement() -> impl Strategy<Value = StatementKind> {
    let arg = (
        name(),
        prop_oneof![
            expr().prop_map(ArgValue::Input),
            var(sigil()).prop_map(ArgValue::Output),
        ],
    )
        .prop_map(|(name, value)| Arg { name, value });
    let scope = prop_oneof![
        Just(SetScope::Default),
        Just(SetScope::Local),
        Just(SetScope::Global)
    ];
    prop_oneof![
        4 => (
            prop::option::of(name()),
            operation_name(),
            prop::option::of(expr()),
            prop::collection::vec(arg, 0..3),
        )
            .prop_map(|(namespace, name, positional, args)| {
                StatementKind::Operation(Operation {
                    pos: ZERO,
                    namespace,
                    name,
                    positional,
                    args,
                })
            }),
        2 => (scope, var(sigil()), expr())
            .prop_map(|(scope, target, value)| StatementKind::Set { scope, target, value }),
        1 => prop::option::of(name()).prop_map(StatementKind::Await),
        1 => prop::option::of(expr()).prop_map(StatementKind::Throw),
        1 => (name(), prop::collection::vec((name(), expr()), 0..3))
            .prop_map(|(name, args)| StatementKind::Call { name, args }),
        1 => prop_oneof![
            Just(StatementKind::Break),
            Just(StatementKind::Continue),
            Just(StatementKind::Return),
            Just(StatementKind::Fail),
            Just(StatementKind::Error),
            Just(StatementKind::Warn),
            Just(StatementKind::ForceWarn),
            Just(StatementKind::ForceNormal),
        ],
    ]
}

fn statement() -> impl Strategy<Value = Statement> {
    let leaf = (description(), simple_statement()).prop_map(|(description, kind)| Statement {
        pos: ZERO,
        description,
        kind,
    });
    leaf.prop_recursive(3, 24, 4, |inner| {
        let block = prop::collection::vec(inner, 0..4).prop_map(|statements| Block { statements });
        let directive = prop_oneof![
            prop::option::of(name()).prop_map(DirectiveKind::Async),
            expr().prop_map(DirectiveKind::Retry),
            expr().prop_map(DirectiveKind::Timeout),
            expr().prop_map(DirectiveKind::Lock),
            prop_oneof![
                Just("credentials"),
                Just("Isolation"),
                Just("executionPolicy")
            ]
            .prop_map(|n| DirectiveKind::Unsupported(n.to_owned())),
        ]
        .prop_map(|kind| Directive { pos: ZERO, kind });
        let otherwise = prop::option::of(prop_oneof![
            block.clone().prop_map(Else::Block),
            (predicate(), block.clone(), prop::option::of(block.clone())).prop_map(
                |(cond, then, otherwise)| Else::If {
                    pos: ZERO,
                    branch: If {
                        cond,
                        then,
                        otherwise: otherwise.map(|b| Box::new(Else::Block(b))),
                    },
                }
            ),
        ]);
        let param = (var(sigil()), prop::option::of(expr()))
            .prop_map(|(var, default)| Param { var, default });
        let kind = prop_oneof![
            block.clone().prop_map(StatementKind::Block),
            (prop::collection::vec(directive, 1..3), block.clone())
                .prop_map(|(directives, body)| StatementKind::With { directives, body }),
            (predicate(), block.clone(), otherwise).prop_map(|(cond, then, otherwise)| {
                StatementKind::If(If {
                    cond,
                    then,
                    otherwise: otherwise.map(Box::new),
                })
            }),
            (var(sigil()), expr(), block.clone())
                .prop_map(|(var, source, body)| StatementKind::Foreach { var, source, body }),
            (prop_oneof![Just("for"), Just("foreach")], block.clone()).prop_map(
                |(keyword, body)| StatementKind::Unsupported {
                    construct: format!("{keyword} directory"),
                    body
                }
            ),
            (
                any::<bool>(),
                prop_oneof![Just(TargetKind::Server), Just(TargetKind::Role)],
                expr(),
                block.clone()
            )
                .prop_map(|(each, kind, target, body)| StatementKind::Target {
                    kind,
                    each,
                    target,
                    body
                }),
            (block.clone(), block.clone())
                .prop_map(|(body, catch)| StatementKind::Try { body, catch }),
            (name(), prop::collection::vec(param, 0..3), block)
                .prop_map(|(name, params, body)| StatementKind::Module { name, params, body }),
        ];
        (description(), kind).prop_map(|(description, kind)| Statement {
            pos: ZERO,
            description,
            kind,
        })
    })
}

fn plan() -> impl Strategy<Value = Plan> {
    prop::collection::vec(statement(), 0..5).prop_map(|statements| Plan {
        body: Block { statements },
    })
}

/// Input assembled from pieces of real plans (statements, openings and closings of blocks,
/// strings with escapes) and bits of punctuation, so that it often parses and, when it does not,
/// reaches deep into the parser's error paths.
fn plan_like_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => prop::sample::select(vec![
            "Log-Information a $x b;\n",
            "Log-Information \"q `$ $Fn($x, @l) `n\";\n",
            "Exec /bin/echo (Arguments: a b, Output => $o);\n",
            "SHExec >>\necho `$HOME > x\n>>;\n",
            "Log-Debug >-->a >> b>-->;\n",
            "set $x = @(a, %(k: v), $(@l[0]));\n",
            "set local @l = @Range(1, 3);\n",
            "global $g = 1;\n",
            "if $x == a && !($y != b || c) {\n",
            "} else if $z {\n",
            "} else {\n",
            "with async=a, retry=2, lock=$l {\n",
            "foreach $i in @l {\n",
            "foreach server in @(a) {\n",
            "for role r {\n",
            "try {\n",
            "} catch {\n",
            "module M<$a, $b = d> {\n",
            "call M(a: 1, b: $x);\n",
            "{\n",
            "}\n",
            "# description\n",
            "/* block\ncomment */ ",
            "##AH:UseTextMode\n",
            "await a; break; continue; return; fail; error; warn; force warn; force normal;\n",
            "throw oops;\n",
            "\n",
        ]).prop_map(str::to_owned),
        1 => "[{}()\\[\\]$@%;:,=!&|\"'`<> a-z0-9#/*\n-]{1,4}",
    ];
    prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn printed_plans_parse_back_to_the_same_tree(plan in plan()) {
        let printed = print(&plan);
        let mut parsed = match parse(&printed) {
            Ok(parsed) => parsed,
            Err(d) => return Err(TestCaseError::fail(format!("{d}\nprinted:\n{printed}"))),
        };
        prop_assert_eq!(print(&parsed), printed.clone(), "printed:\n{}", printed);
        strip_positions(&mut parsed);
        prop_assert_eq!(parsed, plan, "printed:\n{}", printed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn parse_never_panics_on_arbitrary_text(src in any::<String>()) {
        let _ = parse(&src);
    }

    #[test]
    fn whatever_parses_prints_and_parses_back(src in plan_like_text()) {
        if let Ok(mut plan) = parse(&src) {
            let printed = print(&plan);
            let mut again = match parse(&printed) {
                Ok(again) => again,
                Err(d) => return Err(TestCaseError::fail(format!("{d}\nsource:\n{src}\nprinted:\n{printed}"))),
            };
            strip_positions(&mut plan);
            strip_positions(&mut again);
            prop_assert_eq!(again, plan, "source:\n{}\nprinted:\n{}", src, printed);
        }
    }
}
