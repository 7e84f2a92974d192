//! `verify-realm`: one verdict line and a per-claim table for a CCA token.

use clap::Parser;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use verify_realm::{token, verify};

/// Appraise a realm's CCA attestation token against the reference values of its image.
///
/// Exit status: 0 when every claim matches, 1 when one does not (named in the verdict
/// line), 2 when the inputs cannot be read.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The token: raw CBOR, a console log with `token:` (hex) or `token-b64:` lines,
    /// or a file of bare hex or base64.
    token: PathBuf,
    /// Trust anchors: ccatoken's CPAK list (JSON).
    #[arg(long)]
    cpak: PathBuf,
    /// The challenge given to the realm (64 bytes, hex).
    #[arg(long)]
    challenge: String,
    /// The reference RIM, as `tools/rim-measure` prints it (`sha256:HEX`) or bare hex.
    #[arg(long, conflicts_with = "image", required_unless_present = "image")]
    rim: Option<String>,
    /// Compute the reference RIM from this image with `tools/rim-measure`.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Realm RAM in MiB, for `--image`.
    #[arg(long, default_value_t = 64, requires = "image")]
    mem: u32,
    /// RMI version of the host (1.0: TF-RMM v0.8.0, 2.0: v0.9.0), for `--image`.
    #[arg(long, default_value = "1.0", requires = "image")]
    rmi: String,
    /// Further `tools/rim-measure` options, for `--image` (e.g. `--dtb=FILE`).
    #[arg(
        long = "rim-measure-arg",
        allow_hyphen_values = true,
        requires = "image"
    )]
    rim_measure_args: Vec<String>,
    /// The personalisation value given at realm creation, as text (zero-padded to
    /// 64 bytes). Default: none (64 zero bytes).
    #[arg(long, conflicts_with = "rpv_hex")]
    rpv: Option<String>,
    /// The personalisation value as hex (zero-padded to 64 bytes).
    #[arg(long)]
    rpv_hex: Option<String>,
    /// Platform reference values (ccatoken's JSON: `{"platform": [{"implementation-id",
    /// "sw-components", "platform-configuration"}]}`): the platform firmware must match one.
    #[arg(long)]
    platform_refs: Option<PathBuf>,
    /// An expected REM, `N=HEX` (N in 0..=3); repeatable.
    #[arg(long = "rem")]
    rems: Vec<String>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(rep) => {
            println!("{}", rep.verdict());
            print!("{}", rep.table());
            if rep.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            println!("verify-realm: FAIL: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(a: Args) -> Result<verify::Report, String> {
    let raw = std::fs::read(&a.token).map_err(|e| format!("{}: {e}", a.token.display()))?;
    let tok = token::read_any(&raw).map_err(|e| format!("{}: {e}", a.token.display()))?;
    let cpak_json =
        std::fs::read_to_string(&a.cpak).map_err(|e| format!("{}: {e}", a.cpak.display()))?;
    let challenge = hex64(&a.challenge, "--challenge", false)?;
    let rim_text = match (&a.rim, &a.image) {
        (Some(r), _) => r.clone(),
        (None, Some(img)) => rim_measure(img, a.mem, &a.rmi, &a.rim_measure_args)?,
        (None, None) => unreachable!("clap requires --rim or --image"),
    };
    let rim = parse_rim(&rim_text)?;
    let rpv = match (&a.rpv, &a.rpv_hex) {
        (Some(t), _) => pad64(t.as_bytes().to_vec(), "--rpv")?,
        (None, Some(h)) => hex64(h, "--rpv-hex", true)?,
        (None, None) => vec![0; 64],
    };
    let mut rems: [Option<Vec<u8>>; 4] = Default::default();
    for r in &a.rems {
        let (n, h) = r.split_once('=').ok_or(format!("--rem {r}: want N=HEX"))?;
        let n: usize = n
            .parse()
            .ok()
            .filter(|n| *n < 4)
            .ok_or(format!("--rem {r}: N must be 0..=3"))?;
        rems[n] = Some(hex::decode(h).map_err(|e| format!("--rem {r}: {e}"))?);
    }
    let platform_refs_json = match &a.platform_refs {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let reference = verify::Reference {
        cpak_json,
        challenge,
        rim,
        rpv,
        rems,
        platform_refs_json,
    };
    Ok(verify::appraise(&tok, &reference))
}

fn hex64(h: &str, what: &str, pad: bool) -> Result<Vec<u8>, String> {
    let b = hex::decode(h).map_err(|e| format!("{what}: not hex: {e}"))?;
    if pad {
        pad64(b, what)
    } else if b.len() == 64 {
        Ok(b)
    } else {
        Err(format!("{what}: {} bytes, want 64", b.len()))
    }
}

fn pad64(mut b: Vec<u8>, what: &str) -> Result<Vec<u8>, String> {
    if b.len() > 64 {
        return Err(format!("{what}: {} bytes, at most 64", b.len()));
    }
    b.resize(64, 0);
    Ok(b)
}

/// `sha256:HEX` (rim-measure's form), `sha-256:HEX` or bare hex (algorithm from the length).
fn parse_rim(s: &str) -> Result<(String, Vec<u8>), String> {
    let (alg, h) = s.trim().split_once(':').unwrap_or(("", s.trim()));
    let v = hex::decode(h).map_err(|e| format!("RIM {s}: not hex: {e}"))?;
    let alg = match (alg.replace('-', "").as_str(), v.len()) {
        ("sha256" | "", 32) => "sha-256",
        ("sha512" | "", 64) => "sha-512",
        _ => {
            return Err(format!(
                "RIM {s}: want sha256:<32 bytes> or sha512:<64 bytes>"
            ))
        }
    };
    Ok((alg.into(), v))
}

fn rim_measure(img: &PathBuf, mem: u32, rmi: &str, extra: &[String]) -> Result<String, String> {
    let tool = std::env::var_os("RIM_MEASURE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rim-measure"));
    let out = Command::new(&tool)
        .arg(img)
        .args(["--mem", &mem.to_string(), "--rmi", rmi])
        .args(extra)
        .output()
        .map_err(|e| format!("{}: {e}", tool.display()))?;
    if !out.status.success() {
        return Err(format!(
            "rim-measure failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let s = String::from_utf8_lossy(&out.stdout);
    s.lines()
        .last()
        .map(|l| l.trim().to_string())
        .ok_or("rim-measure printed nothing".into())
}
