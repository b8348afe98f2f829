//! Device selection: the one helper that turns a user's `--device` string into a [`Device`].

use candle_core::Device;
use std::fmt;
use std::str::FromStr;

/// A device as the user names it: `cpu`, `cuda:N` (or `cuda` for `cuda:0`), or `auto`
/// (the first CUDA device when this build has CUDA and one is present, else the CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    Auto,
}

/// A device string that is none of `cpu`, `cuda`, `cuda:N`, `auto`.
#[derive(Debug, thiserror::Error)]
#[error("unknown device {0:?}: expected `cpu`, `cuda`, `cuda:N` or `auto`")]
pub struct BadDevice(pub String);

impl FromStr for DeviceSpec {
    type Err = BadDevice;
    fn from_str(s: &str) -> Result<Self, BadDevice> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" => Ok(Self::Cpu),
            "auto" => Ok(Self::Auto),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| BadDevice(s.to_string())),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = BadDevice;
    fn try_from(s: String) -> Result<Self, BadDevice> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Auto => write!(f, "auto"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device. `cuda:N` in a build without the `cuda` feature is an error that says so.
    pub fn open(self) -> candle_core::Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    candle_core::bail!(
                        "device cuda:{n} requested, but this binary was built without the `cuda` feature \
                         (rebuild with `--features cuda`, see README)"
                    )
                }
                Device::new_cuda(n)
            }
            Self::Auto => {
                if candle_core::utils::cuda_is_available()
                    && let Ok(d) = Device::new_cuda(0)
                {
                    return Ok(d);
                }
                Ok(Device::Cpu)
            }
        }
    }
}

/// Parses and opens a device in one call.
pub fn parse_device(spec: &str) -> candle_core::Result<Device> {
    let spec: DeviceSpec = spec
        .parse()
        .map_err(|e: BadDevice| candle_core::Error::Msg(e.to_string()))?;
    spec.open()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("CUDA:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        let err = "tpu:0".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(err.contains("tpu:0"), "{err}");
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn cpu_and_auto_open_without_gpu() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        parse_device("auto").unwrap();
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let err = parse_device("cuda:0").unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
