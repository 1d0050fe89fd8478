//! A pickle *decoder* for data files (CIFAR's "python" release): it reads the opcode stream
//! into values and never imports, calls or executes anything. Class references (`GLOBAL`)
//! and calls (`REDUCE`, `NEWOBJ`, `BUILD`) stay symbolic; [`ndarray_u8`] recognises the one
//! shape numpy arrays take and reads their bytes.
//!
//! Memo entries share their value (as Python does), so a file cannot multiply its size
//! by referring to one object many times; every length is checked against the bytes left.
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use anyhow::{Context, Result, bail, ensure};

/// A decoded pickle value.
#[derive(Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Rc<[u8]>),
    Str(Rc<str>),
    List(Rc<RefCell<Vec<Value>>>),
    Tuple(Rc<[Value]>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// `module.name`, a reference only.
    Global(Rc<(String, String)>),
    /// `callable(*args)` as written in the file, not evaluated.
    Call(Rc<(Value, Value)>),
    /// `object.__setstate__(state)` as written in the file, not evaluated.
    Build(Rc<(Value, Value)>),
    /// Stack marker (MARK).
    Mark,
}

/// Values nest as deep as a file makes them (a tuple of a tuple of …, one opcode each), so
/// dropping them must not recurse: children that only this value owns are moved onto a
/// work list and dropped one level at a time.
impl Drop for Value {
    fn drop(&mut self) {
        let mut pending = Vec::new();
        self.take_owned_children(&mut pending);
        while let Some(mut value) = pending.pop() {
            value.take_owned_children(&mut pending);
        }
    }
}

impl Value {
    /// Moves out the children that would be dropped with this value (those behind an `Rc`
    /// that nothing else holds), leaving `None`s.
    fn take_owned_children(&mut self, out: &mut Vec<Value>) {
        match self {
            Value::List(items) => {
                if let Some(cell) = Rc::get_mut(items) {
                    out.append(cell.get_mut());
                }
            }
            Value::Dict(items) => {
                if let Some(cell) = Rc::get_mut(items) {
                    for (k, v) in cell.get_mut().drain(..) {
                        out.push(k);
                        out.push(v);
                    }
                }
            }
            Value::Tuple(items) => {
                if let Some(items) = Rc::get_mut(items) {
                    out.extend(items.iter_mut().map(|v| std::mem::replace(v, Value::None)));
                }
            }
            Value::Call(pair) | Value::Build(pair) => {
                if let Some((a, b)) = Rc::get_mut(pair) {
                    out.push(std::mem::replace(a, Value::None));
                    out.push(std::mem::replace(b, Value::None));
                }
            }
            _ => {}
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Global(_) => "class reference",
            Value::Call(_) => "call",
            Value::Build(_) => "object",
            Value::Mark => "mark",
        }
    }

    /// The text of a `str`, or of bytes (Python 2 strings), lossily.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.to_string()),
            other => byte_payload(other).ok().map(|b| String::from_utf8_lossy(&b).into_owned()),
        }
    }

    /// Looks up `key` (matched as text) in a dict.
    pub fn get(&self, key: &str) -> Option<Value> {
        match self {
            Value::Dict(items) => {
                items.borrow().iter().find(|(k, _)| k.as_text().as_deref() == Some(key)).map(|(_, v)| v.clone())
            }
            _ => None,
        }
    }

    /// A list or tuple of integers.
    pub fn as_ints(&self) -> Result<Vec<i64>> {
        let items: Vec<Value> = match self {
            Value::List(l) => l.borrow().clone(),
            Value::Tuple(t) => t.to_vec(),
            other => bail!("expected a list of integers, found {}", other.describe()),
        };
        items
            .iter()
            .map(|v| match v {
                Value::Int(i) => Ok(*i),
                other => bail!("expected an integer, found {}", other.describe()),
            })
            .collect()
    }

    /// A list or tuple of strings.
    pub fn as_texts(&self) -> Result<Vec<String>> {
        let items: Vec<Value> = match self {
            Value::List(l) => l.borrow().clone(),
            Value::Tuple(t) => t.to_vec(),
            other => bail!("expected a list of strings, found {}", other.describe()),
        };
        items.iter().map(|v| v.as_text().context("expected a string")).collect()
    }
}

fn is_global(value: &Value, modules: &[&str], name: &str) -> bool {
    matches!(value, Value::Global(g) if modules.contains(&g.0.as_str()) && g.1 == name)
}

/// Bytes from `bytes`, or from `_codecs.encode(text, 'latin1')`, which is how Python 3
/// writes bytes at protocol 2.
fn byte_payload(value: &Value) -> Result<Rc<[u8]>> {
    match value {
        Value::Bytes(b) => Ok(b.clone()),
        Value::Call(call) if is_global(&call.0, &["_codecs"], "encode") => {
            let Value::Tuple(args) = &call.1 else { bail!("malformed _codecs.encode arguments") };
            // Both arguments must be plain strings: no recursion into nested values.
            let (Some(Value::Str(text)), Some(Value::Str(encoding))) = (args.first(), args.get(1)) else {
                bail!("malformed _codecs.encode arguments")
            };
            ensure!(matches!(&**encoding, "latin1" | "latin-1"), "unsupported byte encoding in _codecs.encode");
            text.chars()
                .map(|c| u8::try_from(c as u32).map_err(|_| anyhow::anyhow!("non-latin-1 character in byte data")))
                .collect::<Result<Vec<u8>>>()
                .map(Rc::from)
        }
        other => bail!("expected array bytes, found {}", other.describe()),
    }
}

/// Reads a numpy `uint8` array, as `ndarray.__reduce__` pickles it (`_reconstruct` plus
/// state, protocols ≤ 4) or as `__reduce_ex__(5)` does (`_frombuffer`): shape and bytes.
pub fn ndarray_u8(value: &Value) -> Result<(Vec<usize>, Rc<[u8]>)> {
    const MULTIARRAY: [&str; 2] = ["numpy.core.multiarray", "numpy._core.multiarray"];
    const NUMERIC: [&str; 2] = ["numpy.core.numeric", "numpy._core.numeric"];
    let (shape, dtype, data) = match value {
        Value::Build(build) => {
            let Value::Call(reconstruct) = &build.0 else { bail!("expected a numpy array") };
            ensure!(is_global(&reconstruct.0, &MULTIARRAY, "_reconstruct"), "expected a numpy array");
            let Value::Tuple(state) = &build.1 else { bail!("malformed numpy array state") };
            ensure!(state.len() == 5, "malformed numpy array state ({} fields)", state.len());
            ensure!(matches!(state[3], Value::Bool(false) | Value::Int(0)), "Fortran-ordered arrays are not supported");
            (&state[1], &state[2], &state[4])
        }
        Value::Call(call) if is_global(&call.0, &NUMERIC, "_frombuffer") => {
            let Value::Tuple(args) = &call.1 else { bail!("malformed numpy _frombuffer arguments") };
            ensure!(args.len() == 4, "malformed numpy _frombuffer arguments");
            ensure!(args[3].as_text().as_deref() == Some("C"), "only C-ordered arrays are supported");
            (&args[2], &args[1], &args[0])
        }
        other => bail!("expected a numpy array, found {}", other.describe()),
    };
    let shape: Vec<usize> = shape
        .as_ints()
        .context("numpy array shape")?
        .into_iter()
        .map(|d| usize::try_from(d).context("negative array dimension"))
        .collect::<Result<_>>()?;
    check_uint8_dtype(dtype)?;
    let data = byte_payload(data)?;
    let expected = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).context("array shape overflows")?;
    ensure!(data.len() == expected, "array of shape {shape:?} holds {} bytes, needs {expected}", data.len());
    Ok((shape, data))
}

/// `numpy.dtype('u1', …)` with its state.
fn check_uint8_dtype(dtype: &Value) -> Result<()> {
    let Value::Build(dtype) = dtype else { bail!("malformed numpy dtype") };
    let Value::Call(dtype_call) = &dtype.0 else { bail!("malformed numpy dtype") };
    ensure!(is_global(&dtype_call.0, &["numpy"], "dtype"), "malformed numpy dtype");
    let Value::Tuple(dtype_args) = &dtype_call.1 else { bail!("malformed numpy dtype") };
    let type_name = dtype_args.first().and_then(Value::as_text).unwrap_or_default();
    ensure!(type_name == "u1", "numpy array of dtype {type_name:?}, expected u1 (uint8)");
    Ok(())
}

/// Python string-literal escapes of protocol 0's STRING: \\, \', \", \n, \r, \t, \xHH.
fn unescape(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.bytes();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match chars.next().context("dangling escape in STRING")? {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'x' => {
                let hex = [chars.next(), chars.next()];
                let [Some(h), Some(l)] = hex else { bail!("short \\x escape in STRING") };
                let digits = std::str::from_utf8(&[h, l]).map(str::to_owned)?;
                out.push(u8::from_str_radix(&digits, 16).context("bad \\x escape in STRING")?);
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Decodes one pickle (protocols 0–5 as far as plain data needs).
pub fn decode(bytes: &[u8]) -> Result<Value> {
    let mut decoder = Decoder { bytes, pos: 0, stack: Vec::new(), memo: HashMap::new() };
    decoder.run().with_context(|| format!("pickle decoding failed at byte {}", decoder.pos))
}

struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u64, Value>,
}

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        ensure!(
            n <= self.bytes.len() - self.pos,
            "truncated: needs {n} more bytes, {} left",
            self.bytes.len() - self.pos
        );
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn uint(&mut self, n: usize) -> Result<u64> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.bytes[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').context("truncated: unterminated text line")?;
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(text)
    }

    fn pop(&mut self) -> Result<Value> {
        match self.stack.pop() {
            Some(Value::Mark) | None => bail!("stack underflow"),
            Some(v) => Ok(v),
        }
    }

    fn top(&self) -> Result<&Value> {
        match self.stack.last() {
            Some(Value::Mark) | None => bail!("stack underflow"),
            Some(v) => Ok(v),
        }
    }

    /// Pops everything down to the last MARK.
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let mark = self.stack.iter().rposition(|v| matches!(v, Value::Mark)).context("missing MARK")?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn bytes_value(&mut self, len: u64) -> Result<Value> {
        let len = usize::try_from(len).context("length overflows")?;
        Ok(Value::Bytes(Rc::from(self.take(len)?)))
    }

    fn str_value(&mut self, len: u64) -> Result<Value> {
        let len = usize::try_from(len).context("length overflows")?;
        let text = std::str::from_utf8(self.take(len)?).context("invalid UTF-8 in a string")?;
        Ok(Value::Str(Rc::from(text)))
    }

    fn append(&mut self, items: Vec<Value>) -> Result<()> {
        match self.top()? {
            Value::List(list) => list.borrow_mut().extend(items),
            other => bail!("APPEND to a {}", other.describe()),
        }
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<()> {
        ensure!(items.len().is_multiple_of(2), "odd number of dict items");
        let Value::Dict(dict) = self.top()? else { bail!("SETITEM on a non-dict") };
        let mut dict = dict.borrow_mut();
        let mut items = items.into_iter();
        while let (Some(k), Some(v)) = (items.next(), items.next()) {
            dict.push((k, v));
        }
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<()> {
        let value = self.memo.get(&key).with_context(|| format!("memo key {key} is not defined"))?.clone();
        self.stack.push(value);
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> Result<()> {
        let value = self.top()?.clone();
        self.memo.insert(key, value);
        Ok(())
    }

    fn run(&mut self) -> Result<Value> {
        loop {
            let op = self.take(1)?[0];
            match op {
                0x80 => {
                    let protocol = self.uint(1)?;
                    ensure!(protocol <= 5, "unsupported pickle protocol {protocol}");
                }
                0x95 => {
                    self.uint(8)?; // FRAME: a length hint only
                }
                b'.' => {
                    let value = self.pop()?;
                    return Ok(value);
                }
                b'(' => self.stack.push(Value::Mark),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'I' => {
                    let line = self.line()?;
                    let value = match line.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        text => Value::Int(text.trim().parse().with_context(|| format!("bad INT {text:?}"))?),
                    };
                    self.stack.push(value);
                }
                b'S' => {
                    let line = self.line()?;
                    let quoted = line.trim_end();
                    let inner = quoted
                        .strip_prefix('\'')
                        .and_then(|q| q.strip_suffix('\''))
                        .or_else(|| quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')))
                        .context("STRING argument is not quoted")?;
                    self.stack.push(Value::Bytes(Rc::from(unescape(inner)?)));
                }
                b'V' => {
                    let line = self.line()?;
                    self.stack.push(Value::Str(Rc::from(line.as_str())));
                }
                b'L' => {
                    let line = self.line()?;
                    let digits = line.trim_end_matches('L');
                    self.stack.push(Value::Int(digits.parse().with_context(|| format!("bad LONG {line:?}"))?));
                }
                b'F' => {
                    let line = self.line()?;
                    self.stack.push(Value::Float(line.trim().parse().with_context(|| format!("bad FLOAT {line:?}"))?));
                }
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a => {
                    let n = self.uint(1)? as usize;
                    ensure!(n <= 8, "integer of {n} bytes is too large");
                    let raw = self.take(n)?;
                    let mut v: i64 = raw.iter().rev().fold(0i64, |acc, &b| (acc << 8) | b as i64);
                    if n > 0 && n < 8 && raw[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    let raw: [u8; 8] = self.take(8)?.try_into().expect("8 bytes");
                    self.stack.push(Value::Float(f64::from_be_bytes(raw)));
                }
                b'T' | b'B' => {
                    let len = self.uint(4)?;
                    let v = self.bytes_value(len)?;
                    self.stack.push(v);
                }
                b'U' | b'C' => {
                    let len = self.uint(1)?;
                    let v = self.bytes_value(len)?;
                    self.stack.push(v);
                }
                0x8e | 0x96 => {
                    let len = self.uint(8)?;
                    let v = self.bytes_value(len)?;
                    self.stack.push(v);
                }
                b'X' => {
                    let len = self.uint(4)?;
                    let v = self.str_value(len)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let len = self.uint(1)?;
                    let v = self.str_value(len)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let len = self.uint(8)?;
                    let v = self.str_value(len)?;
                    self.stack.push(v);
                }
                b']' => self.stack.push(Value::List(Rc::default())),
                b'}' => self.stack.push(Value::Dict(Rc::default())),
                b')' => self.stack.push(Value::Tuple(Rc::from(Vec::new()))),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Dict(Rc::default()));
                    self.set_items(items)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(Rc::from(items)));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    ensure!(self.stack.len() >= n, "stack underflow");
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.stack.push(Value::Tuple(Rc::from(items)));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(Rc::new((module, name))));
                }
                0x93 => {
                    let name = self.pop()?.as_text().context("STACK_GLOBAL name is not a string")?;
                    let module = self.pop()?.as_text().context("STACK_GLOBAL module is not a string")?;
                    self.stack.push(Value::Global(Rc::new((module, name))));
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.stack.push(Value::Call(Rc::new((callable, args))));
                }
                b'b' => {
                    let state = self.pop()?;
                    let object = self.pop()?;
                    self.stack.push(Value::Build(Rc::new((object, state))));
                }
                b'p' => {
                    let key = self.line()?.trim().parse().context("bad PUT key")?;
                    self.memo_put(key)?;
                }
                b'q' => {
                    let key = self.uint(1)?;
                    self.memo_put(key)?;
                }
                b'r' => {
                    let key = self.uint(4)?;
                    self.memo_put(key)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?;
                }
                b'g' => {
                    let key = self.line()?.trim().parse().context("bad GET key")?;
                    self.memo_get(key)?;
                }
                b'h' => {
                    let key = self.uint(1)?;
                    self.memo_get(key)?;
                }
                b'j' => {
                    let key = self.uint(4)?;
                    self.memo_get(key)?;
                }
                other => bail!("unsupported pickle opcode 0x{other:02x}"),
            }
        }
    }
}
