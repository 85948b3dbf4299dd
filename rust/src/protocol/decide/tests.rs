use super::*;
use crate::protocol::drawdown::TradingState;

fn tables() -> CoreResult<Tables> {
    Tables::compile(
        WeekTypeBounds::default(),
        LevelThresholds::default(),
        AtrRegimeTable::default(),
        ProtectionTable::default(),
        VixBreakers::default(),
    )
}

#[test]
fn compiled_tables_answer_like_the_free_functions() -> CoreResult<()> {
    let t = tables()?;
    let w = t.classify_week(Position::ShortPut, -2.0, true)?;
    let direct =
        week_type::classify_week(Position::ShortPut, -2.0, true, &WeekTypeBounds::default())?;
    assert_eq!(w, direct);
    let r = t.vix_breaker(90.0)?;
    assert_eq!(r.state, TradingState::Halted);
    assert_eq!(t.protection_multiplier(0)?, 1.0);
    Ok(())
}

#[test]
fn a_bad_table_is_refused_once_and_named() {
    let p = ProtectionTable {
        thresholds: [0.2, 0.1, 0.15, 0.3],
        ..ProtectionTable::default()
    };
    let err = Tables::compile(
        WeekTypeBounds::default(),
        LevelThresholds::default(),
        AtrRegimeTable::default(),
        p,
        VixBreakers::default(),
    );
    assert!(
        matches!(err, Err(CoreError::InvalidInput { .. })),
        "{err:?}"
    );
}

#[test]
fn an_out_of_range_protection_level_is_an_error_not_a_panic() -> CoreResult<()> {
    assert!(tables()?.protection_multiplier(9).is_err());
    Ok(())
}

mod label {
    use crate::error::CoreResult;
    use crate::protocol::decide::label::{
        market_label, Label, LabelConfidence, LabelScores, LabelTable,
    };

    fn table() -> LabelTable {
        LabelTable {
            iv_low: 0.2,
            iv_high: 0.4,
            trend_weak: 0.3,
            trend_strong: 0.7,
            trend_window: 20,
            rsi_period: 14,
            rsi_bull: 60.0,
            rsi_bear: 40.0,
            roc_period: 10,
            roc_bull: 2.0,
            roc_bear: -2.0,
            volume_window: 20,
            volume_spike: 1.5,
            win_min_score: 4.0,
            scores: LabelScores {
                vol_low_green: 2,
                vol_high_red: 2,
                vol_chop: 1,
                trend: 3,
                trend_chop: 2,
                momentum: 2,
                momentum_chop: 1,
                volume: 1,
            },
            confidence: LabelConfidence {
                base: 0.5,
                strong_trend: 0.2,
                moderate_trend: 0.1,
                clear_vol: 0.1,
                momentum_agrees: 0.1,
                cap: 0.95,
            },
        }
    }

    #[test]
    fn a_steady_rise_in_calm_markets_is_green() -> CoreResult<()> {
        let close: Vec<f64> = (0..80).map(|i| 100.0 * 1.01f64.powi(i)).collect();
        let r = market_label(&close, 0.15, None, &table())?;
        assert_eq!(r.label, Label::Green);
        assert_eq!(r.trend, "bullish");
        assert!(r.volume_ratio.is_nan());
        assert!(r.confidence <= 0.95);
        Ok(())
    }

    #[test]
    fn a_fall_in_fearful_markets_is_red_and_a_volume_spike_adds_to_it() -> CoreResult<()> {
        let close: Vec<f64> = (0..80).map(|i| 100.0 * 0.99f64.powi(i)).collect();
        let mut volume = vec![1e6; 80];
        volume[79] = 3e6;
        let r = market_label(&close, 0.5, Some(&volume), &table())?;
        assert_eq!(r.label, Label::Red);
        assert_eq!(r.scores[1], 2 + 3 + 2 + 1);
        assert!((r.volume_ratio - 3.0).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn bad_bars_are_errors_not_panics() {
        let t = table();
        assert!(market_label(&[], 0.2, None, &t).is_err());
        assert!(market_label(&[1.0, -1.0], 0.2, None, &t).is_err());
        let close = vec![100.0; 60];
        assert!(market_label(&close, f64::NAN, None, &t).is_err());
        assert!(market_label(&close, 0.2, Some(&[1.0]), &t).is_err());
        let mut short = t;
        short.roc_period = 100;
        assert!(market_label(&close, 0.2, None, &short).is_err());
    }
}

mod sizing {
    use crate::error::CoreResult;
    use crate::protocol::decide::sizing::{fit_to_es_budget, floor_exact, put_budget};
    use crate::protocol::sizing::PutSizing;

    fn put() -> PutSizing {
        PutSizing {
            equity: 100_000.0,
            free_cash: 95_000.0,
            strike: 20.0,
            target_share: 0.225,
            max_symbol_weight: 0.25,
            existing_exposure: 0.0,
            m_label: 1.0,
            m_atr: 1.2,
            m_drawdown: 1.0,
            m_vix: 1.0,
            allowed_exposure: 1.0,
            multiplier: 100.0,
        }
    }

    #[test]
    fn the_room_r07_leaves_caps_an_atr_lifted_budget() -> CoreResult<()> {
        // 0.225 x 100,000 x 1.2 = 27,000 -> 13 contracts; R07 allows 0.25 x 100,000 / 2,000 = 12.5 -> 12.
        let b = put_budget(&put())?;
        assert_eq!((b.sized_contracts, b.room, b.contracts), (13, 12, 12));
        assert!((b.size_cap - 27_000.0).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn floor_exact_counts_a_hair_under_a_whole_number_as_it() {
        assert_eq!(floor_exact(4.999_999_999_9), 5.0);
        assert_eq!(floor_exact(4.5), 4.0);
        assert_eq!(floor_exact(f64::NAN), 0.0);
        assert_eq!(floor_exact(-3.0), 0.0);
    }

    #[test]
    fn a_put_over_the_es_budget_is_resized_to_the_largest_count_within_it() -> CoreResult<()> {
        let base = vec![0.0; 40];
        let unit: Vec<f64> = (0..40).map(|i| -(i as f64) - 1.0).collect();
        // ES(97.5%) of 40 scenarios is the worst one: n x 40.
        let fit = fit_to_es_budget(&base, &unit, false, 10, true, 200.0, 0.975)?;
        assert_eq!(fit.contracts, 5);
        assert_eq!(fit.es_after, 200.0);
        assert_eq!(fit.over_budget, Some(400.0));
        let call = fit_to_es_budget(&base, &unit, false, 10, false, 200.0, 0.975)?;
        assert_eq!((call.contracts, call.over_budget), (10, None));
        let none = fit_to_es_budget(&base, &unit, false, 10, true, 1.0, 0.975)?;
        assert_eq!((none.contracts, none.es_after), (0, 0.0));
        Ok(())
    }

    #[test]
    fn mismatched_scenarios_are_an_error() {
        assert!(fit_to_es_budget(&[0.0; 3], &[0.0; 4], true, 1, true, 1.0, 0.975).is_err());
        assert!(fit_to_es_budget(&[0.0; 3], &[0.0; 3], true, 1, true, f64::NAN, 0.975).is_err());
    }
}

mod strike {
    use crate::error::CoreResult;
    use crate::pricing::{self, OptionKind};
    use crate::protocol::decide::strike::StrikePicker;
    use crate::protocol::strike::{select_synthetic, StrikeGrid};

    #[test]
    fn the_pick_is_the_synthetic_choice_with_its_mid() -> CoreResult<()> {
        let picker = StrikePicker::new(StrikeGrid::default())?;
        let p = picker
            .pick(
                OptionKind::Put,
                100.0,
                7.0 / 365.0,
                0.3,
                0.01,
                40.0,
                50.0,
                45.0,
            )?
            .ok_or_else(|| {
                crate::CoreError::invalid("pick", "a 40-50 delta put exists at spot 100")
            })?;
        let c = select_synthetic(
            OptionKind::Put,
            100.0,
            7.0 / 365.0,
            0.3,
            0.01,
            0.0,
            40.0,
            50.0,
            45.0,
            &StrikeGrid::default(),
        )?;
        assert_eq!(c.map(|c| c.strike), Some(p.strike));
        let mid = pricing::bs_price(
            OptionKind::Put,
            100.0,
            p.strike,
            7.0 / 365.0,
            0.3,
            0.01,
            0.0,
        )?;
        assert_eq!(p.mid, mid);
        Ok(())
    }

    #[test]
    fn a_bad_grid_is_refused_when_compiled() {
        let grid = StrikeGrid {
            tiers: vec![(10.0, 0.0)],
        };
        assert!(StrikePicker::new(grid).is_err());
    }
}

mod scenarios {
    use crate::error::CoreResult;
    use crate::protocol::decide::scenarios::{Held, Scenarios};
    use crate::risk::{self, Book, PositionKind, ScenarioMatrix};

    #[test]
    fn the_book_pnl_is_the_revaluation_with_iv_moving_against_the_price() -> CoreResult<()> {
        let returns = vec![0.01, -0.02, -0.3, 0.05, 0.0, 0.01];
        let s = Scenarios::new(
            returns.clone(),
            3,
            2,
            vec![100.0, 50.0],
            vec![0.2, 0.4],
            5.0,
            1.0 / 365.0,
            0.01,
        )?;
        let held = [
            Held {
                kind: PositionKind::Put,
                underlying: 0,
                quantity: -2.0,
                strike: 95.0,
                t: 0.02,
            },
            Held {
                kind: PositionKind::Stock,
                underlying: 1,
                quantity: 100.0,
                strike: 1.0,
                t: 1.0,
            },
        ];
        let pnl = s.book_pnl(&held)?;
        // -0.3 x -5 = 1.5 for the first column's third row; -0.02 x -5 = 0.1; shifts are floored at -0.9 x IV.
        let shifts: Vec<f64> = returns
            .chunks(2)
            .flat_map(|r| [(-5.0 * r[0]).max(-0.9) * 0.2, (-5.0 * r[1]).max(-0.9) * 0.4])
            .collect();
        let book = Book {
            kind: vec![PositionKind::Put, PositionKind::Stock],
            underlying: vec![0, 1],
            quantity: vec![-2.0, 100.0],
            multiplier: vec![100.0, 1.0],
            strike: vec![95.0, 1.0],
            t: vec![0.02, 1.0],
            vol: vec![0.2, 0.4],
            rate: vec![0.01, 0.01],
            div: vec![0.0, 0.0],
        };
        let direct = risk::revalue(
            &book,
            &[100.0, 50.0],
            &ScenarioMatrix::new("r", &returns, 3, 2)?,
            Some(&ScenarioMatrix::new("v", &shifts, 3, 2)?),
            1.0 / 365.0,
        )?;
        assert_eq!(pnl, direct);
        assert_eq!(s.book_pnl(&[])?, vec![0.0; 3]);
        Ok(())
    }

    #[test]
    fn a_position_on_a_symbol_outside_the_scenarios_is_an_error() -> CoreResult<()> {
        let s = Scenarios::new(
            vec![0.01],
            1,
            1,
            vec![100.0],
            vec![0.2],
            5.0,
            1.0 / 365.0,
            0.0,
        )?;
        let held = [Held {
            kind: PositionKind::Stock,
            underlying: 3,
            quantity: 1.0,
            strike: 1.0,
            t: 1.0,
        }];
        assert!(s.book_pnl(&held).is_err());
        assert!(
            Scenarios::new(vec![0.01], 1, 1, vec![100.0, 1.0], vec![0.2], 5.0, 0.0, 0.0).is_err()
        );
        Ok(())
    }
}

mod scenarios_from_columns {
    use crate::protocol::decide::scenarios::{Held, Scenarios};
    use crate::risk::PositionKind;
    use proptest::prelude::*;

    fn book() -> Vec<Held> {
        vec![
            Held {
                kind: PositionKind::Put,
                underlying: 0,
                quantity: -2.0,
                strike: 95.0,
                t: 0.02,
            },
            Held {
                kind: PositionKind::Stock,
                underlying: 1,
                quantity: 100.0,
                strike: 1.0,
                t: 1.0,
            },
        ]
    }

    #[test]
    fn columns_of_other_lengths_or_none_are_refused() {
        let (a, b) = ([0.01, 0.02], [0.01]);
        let e = Scenarios::from_columns(&[&a, &b], vec![1.0; 2], vec![0.2; 2], 5.0, 0.0, 0.0);
        assert!(matches!(e, Err(err) if err.to_string().contains("columns[1]")));
        let e = Scenarios::from_columns(&[], vec![], vec![], 5.0, 0.0, 0.0);
        assert!(matches!(e, Err(err) if err.to_string().contains("columns")));
        // What `new` checks is checked the same way (one spot for two symbols).
        assert!(
            Scenarios::from_columns(&[&a, &a], vec![1.0], vec![0.2; 2], 5.0, 0.0, 0.0).is_err()
        );
    }

    proptest! {
        /// The scenarios made from columns are those `new` makes of the row-major matrix of the same columns.
        #[test]
        fn columns_give_the_scenarios_of_their_matrix(
            values in prop::collection::vec(-0.5f64..0.5, 0..40),
            cols in 1usize..4,
            sensitivity in -10.0f64..10.0,
        ) {
            let rows = values.len() / cols;
            let columns: Vec<&[f64]> = (0..cols).map(|c| &values[c * rows..(c + 1) * rows]).collect();
            let matrix: Vec<f64> = (0..rows).flat_map(|r| columns.iter().map(move |c| c[r])).collect();
            let spot = vec![100.0; cols];
            let iv = vec![0.3; cols];
            let a = Scenarios::from_columns(&columns, spot.clone(), iv.clone(), sensitivity, 0.01, 0.02);
            let b = Scenarios::new(matrix, rows, cols, spot, iv, sensitivity, 0.01, 0.02);
            prop_assert_eq!(&a, &b);
            if let (Ok(a), Ok(b), true) = (&a, &b, cols >= 2) {
                prop_assert_eq!(a.book_pnl(&book()), b.book_pnl(&book()));
            }
        }

        #[test]
        fn any_columns_never_panic(
            values in prop::collection::vec(prop::num::f64::ANY, 0..30),
            lengths in prop::collection::vec(0usize..10, 0..4),
            sensitivity in prop::num::f64::ANY,
        ) {
            let mut columns: Vec<&[f64]> = Vec::new();
            let mut at = 0;
            for n in lengths {
                let end = (at + n).min(values.len());
                columns.push(&values[at..end]);
                at = end;
            }
            let n = columns.len();
            let _ = Scenarios::from_columns(&columns, vec![100.0; n], vec![0.2; n], sensitivity, 0.0, 0.0);
        }
    }
}

mod group {
    use crate::error::CoreResult;
    use crate::protocol::decide::group::{tail_group, tail_group_of_columns};
    use crate::risk;
    use proptest::prelude::*;

    /// The group as measured before columns were read on their own: `risk::tail_dependence` for every pair the
    /// search follows, both directions.
    fn pairwise(columns: &[&[f64]], q: f64, limit: f64) -> CoreResult<Vec<usize>> {
        if columns[0].len() < 20 {
            return Ok(vec![0]);
        }
        let cols = columns.len();
        let mut in_group = vec![false; cols];
        in_group[0] = true;
        let mut frontier = vec![0usize];
        while let Some(a) = frontier.pop() {
            for b in 1..cols {
                if in_group[b] {
                    continue;
                }
                let (x, y) = (columns[a], columns[b]);
                let c = risk::tail_dependence(x, y, q)?.max(risk::tail_dependence(y, x, q)?);
                if c > limit {
                    in_group[b] = true;
                    frontier.push(b);
                }
            }
        }
        Ok((0..cols).filter(|&c| in_group[c]).collect())
    }

    /// A value that is mostly an ordinary return, sometimes a tie, sometimes not finite.
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            20 => -0.2f64..0.2,
            3 => Just(0.0),
            1 => Just(f64::NAN),
            1 => Just(f64::NEG_INFINITY),
        ]
    }

    proptest! {
        /// Columns read one by one give the group, and the error, of every pair measured on its own.
        #[test]
        fn columns_give_the_pairwise_group_and_error(
            seeds in prop::collection::vec(prop::collection::vec(value(), 0..60), 1..5),
            shared in prop::collection::vec(-0.2f64..0.2, 60),
            rows in 0usize..60,
            q in prop_oneof![4 => 0.01f64..0.5, 1 => Just(0.0), 1 => Just(f64::NAN)],
            limit in 0.0f64..1.0,
            mix in 0.0f64..1.0,
        ) {
            // Each column partly the shared series, so some pairs are tail dependent and chains form.
            let columns: Vec<Vec<f64>> = seeds
                .iter()
                .map(|s| (0..rows).map(|r| shared[r] * mix + s.get(r).copied().unwrap_or(0.01) * (1.0 - mix)).collect())
                .collect();
            let views: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(tail_group_of_columns(&views, q, limit), pairwise(&views, q, limit));
            let matrix: Vec<f64> = (0..rows).flat_map(|r| views.iter().map(move |c| c[r])).collect();
            prop_assert_eq!(tail_group(&matrix, rows, views.len(), q, limit), pairwise(&views, q, limit));
        }

        #[test]
        fn any_columns_never_panic(
            values in prop::collection::vec(prop::num::f64::ANY, 0..80),
            lengths in prop::collection::vec(0usize..30, 0..5),
            q in prop::num::f64::ANY,
            limit in prop::num::f64::ANY,
        ) {
            let mut columns: Vec<&[f64]> = Vec::new();
            let mut at = 0;
            for n in lengths {
                let end = (at + n).min(values.len());
                columns.push(&values[at..end]);
                at = end;
            }
            let _ = tail_group_of_columns(&columns, q, limit);
        }
    }

    #[test]
    fn columns_of_other_lengths_or_none_are_refused() {
        let (a, b) = ([0.01; 30], [0.01; 29]);
        let e = tail_group_of_columns(&[&a, &b], 0.05, 0.5);
        assert!(matches!(e, Err(err) if err.to_string().contains("columns[1]")));
        assert!(tail_group_of_columns(&[], 0.05, 0.5).is_err());
    }

    #[test]
    fn symbols_crashing_together_are_one_group_and_a_chain_links_them() -> CoreResult<()> {
        // Column 1 moves with 0, column 2 with 1 (and so with 0), column 3 on its own.
        let rows = 200;
        let mut returns = Vec::with_capacity(rows * 4);
        for i in 0..rows {
            let a = ((i * 37) % 101) as f64 / 100.0 - 0.5;
            let own = ((i * 53) % 97) as f64 / 100.0 - 0.5;
            returns.extend([a, a * 1.1, a * 0.9, own]);
        }
        assert_eq!(tail_group(&returns, rows, 4, 0.05, 0.5)?, vec![0, 1, 2]);
        assert_eq!(tail_group(&returns[..40], 10, 4, 0.05, 0.5)?, vec![0]);
        assert!(tail_group(&returns, rows, 3, 0.05, 0.5).is_err());
        Ok(())
    }
}

mod equity_at_market {
    use crate::error::CoreResult;
    use crate::pricing::{self, OptionKind};
    use crate::protocol::decide::equity::{
        equities, market_value, value_at_market, years_to_expiry, Holding, Marked,
    };
    use crate::risk::PositionKind;

    fn put(quantity: f64, days: i64) -> Marked {
        Marked {
            kind: PositionKind::Put,
            quantity,
            strike: 95.0,
            days_to_expiry: Some(days),
            spot: 100.0,
            iv: 0.3,
        }
    }

    #[test]
    fn a_short_put_is_a_liability_at_its_black_scholes_mark() -> CoreResult<()> {
        let p = put(-2.0, 7);
        let t = 7.0 / 365.0 + 1.0 / (365.0 * 24.0);
        let price = pricing::bs_price(OptionKind::Put, 100.0, 95.0, t, 0.3, 0.01, 0.0)?;
        assert_eq!(market_value(&p, 0.01)?, -2.0 * 100.0 * price);
        assert!(market_value(&p, 0.01)? < 0.0);
        Ok(())
    }

    #[test]
    fn an_expired_option_keeps_one_hour_and_stock_is_worth_its_spot() -> CoreResult<()> {
        assert_eq!(years_to_expiry(Some(-3)), years_to_expiry(Some(0)));
        assert!(years_to_expiry(Some(0)) > 0.0);
        let stock = Marked {
            kind: PositionKind::Stock,
            quantity: 300.0,
            strike: 0.0,
            days_to_expiry: None,
            spot: 41.5,
            iv: 0.2,
        };
        assert_eq!(market_value(&stock, 0.0)?, 300.0 * 41.5);
        Ok(())
    }

    #[test]
    fn equity_adds_cash_then_each_position_in_order() -> CoreResult<()> {
        let book = [put(-1.0, 3), put(-4.0, 10)];
        let mut expected = 1_000_000.25;
        for p in &book {
            expected += market_value(p, 0.0)?;
        }
        assert_eq!(value_at_market(1_000_000.25, &book, 0.0)?, expected);
        assert_eq!(value_at_market(5.0, &[], 0.0)?, 5.0);
        Ok(())
    }

    #[test]
    fn bad_input_is_named_not_a_panic() {
        let mut bad = put(-1.0, 3);
        bad.spot = f64::NAN;
        assert!(value_at_market(0.0, &[bad], 0.0).is_err());
        assert!(value_at_market(f64::INFINITY, &[], 0.0).is_err());
        let mut undated = put(-1.0, 3);
        undated.days_to_expiry = None;
        assert!(value_at_market(0.0, &[undated], 0.0).is_err());
    }

    #[test]
    fn equities_sum_each_account_and_the_counted_book_like_value_at_market() -> CoreResult<()> {
        let (a, b, c) = (put(-1.0, 3), put(-4.0, 10), put(-2.0, 1));
        let book = [
            Holding {
                marked: a,
                account: Some(1),
                counted: true,
            },
            Holding {
                marked: b,
                account: None,
                counted: true,
            },
            Holding {
                marked: c,
                account: Some(1),
                counted: false,
            },
        ];
        let e = equities(vec![7.0, 1_000.5], 2_000.25, &book, 0.0)?;
        assert_eq!(e.accounts[0], 7.0);
        assert_eq!(e.accounts[1], value_at_market(1_000.5, &[a, c], 0.0)?);
        assert_eq!(e.portfolio, value_at_market(2_000.25, &[a, b], 0.0)?);
        let stray = [Holding {
            marked: a,
            account: Some(2),
            counted: false,
        }];
        assert!(equities(vec![0.0], 0.0, &stray, 0.0).is_err());
        assert!(equities(vec![f64::NAN], 0.0, &[], 0.0).is_err());
        Ok(())
    }
}
