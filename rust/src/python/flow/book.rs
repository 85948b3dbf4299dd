//! `PositionBook`: the engine's positions as the core reads them, kept between decisions (issue 10's speed work).
//! Each decision used to read every position's fields in Python and convert them again; the book reads a position
//! once and re-reads it only when it changed: a different object in its place, or any item of its `__dict__` that
//! is not the very object seen last time (positions' fields are plain immutable values, so an unchanged identity
//! is an unchanged value; the book holds those values, so their identities are not reused). A position whose
//! fields are not plain values kept in its `__dict__` is read again at every decision. The day's quotes (last
//! close, IV, sector per symbol) are kept per market object, which the engine never changes once built.

use std::collections::{BTreeSet, HashMap};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use super::HeldBook;
use crate::error::CoreError;
use crate::protocol::decide::flow;
use crate::python::errors::IntoPyResult;
use crate::risk::PositionKind;

/// One position as last read.
struct Entry {
    obj: Py<PyAny>,
    /// The `__dict__` items seen when it was read, or None when the position must be read at every decision.
    snapshot: Option<Vec<(Py<PyAny>, Py<PyAny>)>>,
    id: String,
    account_id: String,
    symbol: String,
    kind: PositionKind,
    quantity: f64,
    strike: f64,
    expiry: Option<i64>,
    expiry_date: Option<Py<PyAny>>,
    premium: f64,
    cost_basis: f64,
    /// `band[0]`, `band[1]` (None for no band), and whether the position's band was None itself.
    band: Option<(Option<f64>, Option<f64>)>,
    band_none: bool,
    /// The weekly expiry after `expiry` (a roll's), once a decision asked for it.
    roll: Option<i64>,
}

/// The attributes a decision reads from a position.
const FIELDS: [&str; 10] = [
    "id",
    "account_id",
    "symbol",
    "kind",
    "quantity",
    "strike",
    "expiry",
    "premium",
    "cost_basis",
    "band",
];

fn invalid(field: String, reason: impl Into<String>) -> CoreError {
    CoreError::invalid(field, reason.into())
}

/// A value whose identity stands for its value: str, int, float, bool, None, a date, or a tuple of numbers/None.
fn plain(value: &Bound<'_, PyAny>) -> bool {
    if value.is_none()
        || value.is_exact_instance_of::<PyString>()
        || value.is_exact_instance_of::<PyFloat>()
        || value.is_exact_instance_of::<PyInt>()
        || value.is_exact_instance_of::<pyo3::types::PyBool>()
        || value.is_exact_instance_of::<pyo3::types::PyDate>()
        || value.is_exact_instance_of::<pyo3::types::PyDateTime>()
    {
        return true;
    }
    match value.cast_exact::<PyTuple>() {
        Ok(t) => t.iter().all(|x| {
            x.is_none() || x.is_exact_instance_of::<PyFloat>() || x.is_exact_instance_of::<PyInt>()
        }),
        Err(_) => false,
    }
}

fn band_half(band: &Bound<'_, PyAny>, i: usize, at: usize) -> PyResult<Option<f64>> {
    let py = band.py();
    let value = band.get_item(i)?;
    value
        .extract::<Option<f64>>()
        .map_err(|_| {
            invalid(
                format!("positions[{at}].band"),
                "must be two numbers or None",
            )
        })
        .py_err(py)
}

/// `band[0] if band else None, band[1] if band else None`, as the engine read a band.
fn band_of(band: &Bound<'_, PyAny>, at: usize) -> PyResult<Option<(Option<f64>, Option<f64>)>> {
    if band.is_none() || !band.is_truthy()? {
        return Ok(None);
    }
    Ok(Some((band_half(band, 0, at)?, band_half(band, 1, at)?)))
}

impl Entry {
    fn read(obj: &Bound<'_, PyAny>, at: usize) -> PyResult<Entry> {
        let py = obj.py();
        let mut values = Vec::with_capacity(FIELDS.len());
        for name in FIELDS {
            values.push(obj.getattr(PyString::intern(py, name))?);
        }
        let text = |i: usize| -> PyResult<String> {
            values[i]
                .extract::<String>()
                .map_err(|_| invalid(format!("positions[{at}].{}", FIELDS[i]), "must be a string"))
                .py_err(py)
        };
        let number = |i: usize| -> PyResult<f64> {
            values[i]
                .extract::<f64>()
                .map_err(|_| invalid(format!("positions[{at}].{}", FIELDS[i]), "must be a number"))
                .py_err(py)
        };
        let kind_name = text(3)?;
        let kind = PositionKind::parse(&kind_name)
            .map_err(|e| invalid(format!("kind[{at}]"), e.reason().to_string()))
            .py_err(py)?;
        let (expiry, expiry_date) = if values[6].is_none() {
            (None, None)
        } else {
            let ordinal = values[6]
                .call_method0(intern!(py, "toordinal"))?
                .extract::<i64>()?;
            (Some(ordinal), Some(values[6].clone().unbind()))
        };
        // Trusted between decisions only when every field read is a plain value of the instance's __dict__.
        let snapshot = match obj
            .getattr(intern!(py, "__dict__"))
            .ok()
            .and_then(|d| d.cast_into::<PyDict>().ok())
        {
            Some(d) => {
                let mut from_dict = true;
                for (name, value) in FIELDS.iter().zip(&values) {
                    match d.get_item(name)? {
                        Some(v) if v.is(value) && plain(value) => {}
                        _ => {
                            from_dict = false;
                            break;
                        }
                    }
                }
                from_dict.then(|| {
                    d.iter()
                        .map(|(k, v)| (k.unbind(), v.unbind()))
                        .collect::<Vec<_>>()
                })
            }
            None => None,
        };
        Ok(Entry {
            obj: obj.clone().unbind(),
            snapshot,
            id: text(0)?,
            account_id: text(1)?,
            symbol: text(2)?,
            kind,
            quantity: number(4)?,
            strike: number(5)?,
            expiry,
            expiry_date,
            premium: number(7)?,
            cost_basis: number(8)?,
            band: band_of(&values[9], at)?,
            band_none: values[9].is_none(),
            roll: None,
        })
    }

    /// True while `obj` is the position read and its `__dict__` holds the very same items.
    fn current(&self, obj: &Bound<'_, PyAny>) -> bool {
        if !obj.is(&self.obj) {
            return false;
        }
        let Some(snapshot) = &self.snapshot else {
            return false;
        };
        let Ok(d) = obj.getattr(intern!(obj.py(), "__dict__")) else {
            return false;
        };
        let Ok(d) = d.cast_into::<PyDict>() else {
            return false;
        };
        // Identity comparisons only: no Python code runs while the dict is walked.
        d.len() == snapshot.len()
            && d.iter()
                .zip(snapshot)
                .all(|((k, v), (sk, sv))| k.is(sk) && v.is(sv))
    }

    fn is_option(&self) -> bool {
        self.kind != PositionKind::Stock
    }
}

/// The engine's positions, read once and kept between decisions; see the module's docs.
#[pyclass(module = "allsuse._core")]
pub struct PositionBook {
    entries: Vec<Entry>,
    /// The positions dict last read.
    dict: Option<Py<PyDict>>,
    /// Reads of positions since the book was made (a position read again counts again).
    reads: u64,
    market: Option<Py<PyAny>>,
    closes: HashMap<String, f64>,
    ivs: HashMap<String, f64>,
    sectors: HashMap<String, String>,
}

impl PositionBook {
    /// Brings the entries in line with `positions.values()` (same order), reading only what changed.
    /// `sync`, skipped when the caller says the positions have not changed since the last one (`reread` false) and
    /// the dict is the one last read, with as many positions.
    fn sync_if(&mut self, positions: &Bound<'_, PyDict>, reread: bool) -> PyResult<()> {
        let same = self.dict.as_ref().is_some_and(|d| positions.is(d))
            && positions.len() == self.entries.len();
        if reread || !same {
            self.sync(positions)?;
        }
        Ok(())
    }

    fn sync(&mut self, positions: &Bound<'_, PyDict>) -> PyResult<()> {
        // The values are copied first: nothing run while reading a position can change what is walked.
        let values: Bound<'_, PyList> = positions.values();
        let n = values.len();
        for (i, obj) in values.iter().enumerate() {
            if i < self.entries.len() && self.entries[i].current(&obj) {
                continue;
            }
            let entry = Entry::read(&obj, i)?;
            self.reads += 1;
            if i < self.entries.len() {
                self.entries[i] = entry;
            } else {
                self.entries.push(entry);
            }
        }
        self.entries.truncate(n);
        self.dict = Some(positions.clone().unbind());
        Ok(())
    }

    /// Clears the quotes when `market` is not the market they were read from.
    fn use_market(&mut self, market: &Bound<'_, PyAny>) {
        if self.market.as_ref().is_some_and(|m| market.is(m)) {
            return;
        }
        self.market = Some(market.clone().unbind());
        self.closes.clear();
        self.ivs.clear();
        self.sectors.clear();
    }

    fn close(&mut self, market: &Bound<'_, PyAny>, symbol: &str) -> PyResult<f64> {
        if let Some(c) = self.closes.get(symbol) {
            return Ok(*c);
        }
        let py = market.py();
        let c = market
            .call_method1(intern!(py, "bars_for"), (symbol,))?
            .getattr(intern!(py, "last_close"))?
            .extract::<f64>()?;
        self.closes.insert(symbol.to_string(), c);
        Ok(c)
    }

    fn iv(&mut self, market: &Bound<'_, PyAny>, symbol: &str) -> PyResult<f64> {
        if let Some(v) = self.ivs.get(symbol) {
            return Ok(*v);
        }
        let py = market.py();
        let v = market
            .call_method1(intern!(py, "iv_for"), (symbol,))?
            .extract::<f64>()?;
        self.ivs.insert(symbol.to_string(), v);
        Ok(v)
    }

    fn sector(&mut self, market: &Bound<'_, PyAny>, symbol: &str) -> PyResult<String> {
        if let Some(s) = self.sectors.get(symbol) {
            return Ok(s.clone());
        }
        let py = market.py();
        let s = market
            .getattr(intern!(py, "sectors"))?
            .call_method1(intern!(py, "get"), (symbol, "unknown"))?
            .extract::<String>()?;
        self.sectors.insert(symbol.to_string(), s.clone());
        Ok(s)
    }
}

#[pymethods]
impl PositionBook {
    #[new]
    fn new() -> Self {
        PositionBook {
            entries: Vec::new(),
            dict: None,
            reads: 0,
            market: None,
            closes: HashMap::new(),
            ivs: HashMap::new(),
            sectors: HashMap::new(),
        }
    }

    /// Positions read since the book was made (a changed position is read again; an unchanged one is not).
    #[getter]
    fn reads(&self) -> u64 {
        self.reads
    }

    fn __len__(&self) -> usize {
        self.entries.len()
    }

    /// The equity at market of each of `accounts` (ids; `cash` their balances, in the same order) and of the
    /// portfolio (`portfolio_cash` plus every position whose account is not in `merged`) from `positions`, each
    /// position marked at its symbol's last close and IV in `market` (read as `Engine.equities` reads them: close,
    /// then IV, in position order) with `today`'s days to expiry, added in book order by the same core function.
    /// A position of an account not among `accounts` is refused naming `positions`. With `reread` false the positions
    /// are taken as last read (the caller knows they did not change; a different dict, or one of another length, is
    /// read all the same).
    #[pyo3(signature = (
        positions, *, accounts, cash, portfolio_cash, merged, market, today, rate, reread=true
    ))]
    #[allow(clippy::too_many_arguments)]
    fn equities(
        &mut self,
        py: Python<'_>,
        positions: &Bound<'_, PyDict>,
        accounts: Vec<String>,
        cash: Vec<f64>,
        portfolio_cash: f64,
        merged: Vec<String>,
        market: &Bound<'_, PyAny>,
        today: i64,
        rate: f64,
        reread: bool,
    ) -> PyResult<(Vec<f64>, f64)> {
        use crate::protocol::decide::equity;
        if cash.len() != accounts.len() {
            return Err(invalid(
                "cash".to_string(),
                format!("has {} values for {} accounts", cash.len(), accounts.len()),
            ))
            .py_err(py);
        }
        self.sync_if(positions, reread)?;
        self.use_market(market);
        let mut book = Vec::with_capacity(self.entries.len());
        for k in 0..self.entries.len() {
            let (owner, psymbol) = {
                let e = &self.entries[k];
                (
                    accounts.iter().position(|a| *a == e.account_id),
                    e.symbol.clone(),
                )
            };
            let Some(owner) = owner else {
                let e = &self.entries[k];
                return Err(invalid(
                    "positions".to_string(),
                    format!(
                        "position {} of account {} not among the accounts",
                        e.id, e.account_id
                    ),
                ))
                .py_err(py);
            };
            let spot = self.close(market, &psymbol)?;
            let iv = self.iv(market, &psymbol)?;
            let e = &self.entries[k];
            book.push(equity::Holding {
                marked: equity::Marked {
                    kind: e.kind,
                    quantity: e.quantity,
                    strike: e.strike,
                    days_to_expiry: e.expiry.map(|x| x - today),
                    spot,
                    iv,
                },
                account: Some(owner),
                counted: !merged.contains(&e.account_id),
            });
        }
        let e = equity::equities(cash, portfolio_cash, &book, rate).py_err(py)?;
        Ok((e.accounts, e.portfolio))
    }

    /// The held book of one decision of `account_id` on `symbol` over `positions` (a portfolio's positions dict):
    /// every position of the account and every position counted in the portfolio's book (its account not in
    /// `merged`, the accounts whose group was merged away), in the dict's order, each with its symbol's sector,
    /// last close and IV in `market` (the IV of a symbol whose first such position is the account's own, else 0.0),
    /// its scenario column among the book's sorted symbols, and, for the account's options on `symbol`, the
    /// weekly expiry after its own (`roll_expiry(expiry)`, an ordinal, asked once per position) and, for such a
    /// put held without a band, `band(position)`. A quote missing from the market raises as the market does.
    /// `reread` as for `equities`.
    #[pyo3(signature = (positions, *, account_id, symbol, merged, market, roll_expiry, band, reread=true))]
    #[allow(clippy::too_many_arguments)]
    fn held(
        &mut self,
        py: Python<'_>,
        positions: &Bound<'_, PyDict>,
        account_id: &str,
        symbol: &str,
        merged: Vec<String>,
        market: &Bound<'_, PyAny>,
        roll_expiry: &Bound<'_, PyAny>,
        band: &Bound<'_, PyAny>,
        reread: bool,
    ) -> PyResult<HeldBook> {
        self.sync_if(positions, reread)?;
        self.use_market(market);
        let n = self.entries.len();
        let mut in_book = Vec::with_capacity(n);
        let mut names: BTreeSet<&str> = BTreeSet::new();
        names.insert(symbol);
        let mut own = Vec::new();
        for e in &self.entries {
            let counts = !merged.contains(&e.account_id);
            if counts {
                names.insert(e.symbol.as_str());
            }
            if e.account_id == account_id {
                own.push(e.symbol.clone());
            }
            in_book.push(counts);
        }
        let symbols: Vec<String> = names.into_iter().map(str::to_string).collect();
        let column_of = |s: &str| symbols.binary_search_by(|x| x.as_str().cmp(s)).unwrap_or(0);
        let column = column_of(symbol);
        let mut quotes: HashMap<String, (f64, f64)> = HashMap::new();
        let mut rows = Vec::new();
        for (k, &counts) in in_book.iter().enumerate() {
            let (mine, psymbol) = {
                let e = &self.entries[k];
                (e.account_id == account_id, e.symbol.clone())
            };
            if !counts && !mine {
                continue;
            }
            let quote = match quotes.get(&psymbol) {
                Some(q) => *q,
                None => {
                    let iv = if mine {
                        self.iv(market, &psymbol)?
                    } else {
                        0.0
                    };
                    let q = (self.close(market, &psymbol)?, iv);
                    quotes.insert(psymbol.clone(), q);
                    q
                }
            };
            let sector = self.sector(market, &psymbol)?;
            let e = &mut self.entries[k];
            let mut held_band = e.band;
            let mut roll = None;
            if mine && psymbol == symbol && e.is_option() {
                if let Some(date) = &e.expiry_date {
                    if e.roll.is_none() {
                        e.roll = Some(roll_expiry.call1((date.bind(py),))?.extract::<i64>()?);
                    }
                    roll = e.roll;
                    if e.band_none && e.kind == PositionKind::Put {
                        let given = band.call1((e.obj.bind(py),))?;
                        held_band = band_of(&given, k)?;
                    }
                }
            }
            let at = rows.len();
            let band = match held_band {
                None | Some((None, None)) => None,
                Some((Some(l), Some(h))) => Some((l, h)),
                Some(_) => {
                    return Err(invalid(
                        format!("band[{at}]"),
                        "give band_low and band_high, or neither",
                    ))
                    .py_err(py)
                }
            };
            rows.push(flow::Holding {
                id: e.id.clone(),
                account_id: e.account_id.clone(),
                symbol: psymbol.clone(),
                kind: e.kind,
                quantity: e.quantity,
                strike: e.strike,
                expiry: e.expiry,
                roll_expiry: roll,
                premium: e.premium,
                cost_basis: e.cost_basis,
                band,
                sector,
                last_close: quote.0,
                iv: quote.1,
                column: column_of(&psymbol),
                in_book: counts,
            });
        }
        Ok(HeldBook {
            inner: rows,
            symbols,
            own_symbols: own,
            column,
        })
    }
}
