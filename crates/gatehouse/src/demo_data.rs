//! The demo bank: a schema with realistic but FAKE personal data, so the
//! demo, the integration tests and the benchmarks exercise masking on
//! values that look and validate like the real thing (Luhn-valid cards,
//! mod-97-valid IBANs, SSNs that follow SSA rules, ABA routing numbers)
//! without any real person's data.
//!
//! Generation is seeded, so the same customer count always yields the
//! same SQL: tests can rely on what the first customer looks like.
//! Phones use the fictional 555-01xx range and e-mail addresses use the
//! reserved example.com / example.org domains.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Fixed so the demo data is identical on every machine and run.
const SEED: u64 = 0x6a7e_4845_0bad_c0de;
/// Rows per INSERT statement: large enough to load fast, small enough
/// for readable errors.
const ROWS_PER_INSERT: usize = 200;

const FIRST_NAMES: &[&str] = &[
    "Maria", "James", "Aisha", "Wei", "Olivia", "Mateo", "Priya", "Liam", "Sofia", "Noah",
    "Fatima", "Lucas", "Hana", "Ethan", "Chloe", "Diego", "Amara", "Jonas", "Elena", "Omar",
    "Grace", "Yuki", "Samuel", "Ingrid", "Kwame", "Nadia", "Arjun", "Leah", "Tomasz", "Zoe",
    "Rafael", "Mei", "Daniel", "Freya", "Ibrahim", "Clara", "Victor", "Anika", "Patrick", "Rosa",
];

const LAST_NAMES: &[&str] = &[
    "Garcia",
    "Smith",
    "Okafor",
    "Zhang",
    "Johnson",
    "Rossi",
    "Patel",
    "O'Brien",
    "Novak",
    "Kim",
    "Haddad",
    "Silva",
    "Tanaka",
    "Miller",
    "Dubois",
    "Hernandez",
    "Mensah",
    "Schmidt",
    "Ivanova",
    "Khan",
    "Nguyen",
    "Andersen",
    "Kowalski",
    "Moreau",
    "Brown",
    "Yamamoto",
    "Costa",
    "Fischer",
    "Lopez",
    "Williams",
    "D'Angelo",
    "Murphy",
    "Sato",
    "Becker",
    "Nowak",
    "Taylor",
    "Romero",
    "Chen",
    "Walsh",
    "Ali",
];

const AREA_CODES: &[u16] = &[212, 415, 312, 617, 202, 303, 206, 512, 305, 702, 646, 213];

/// Published bank routing numbers (public bank identifiers, not personal
/// data); each passes the ABA checksum, which is what detectors key on.
const ROUTING_NUMBERS: &[&str] = &[
    "011000015",
    "021000021",
    "026009593",
    "121000358",
    "322271627",
];

const DE_BANK_CODES: &[&str] = &["37040044", "10070000", "50010517", "20041133", "70150000"];
const GB_BANK_CODES: &[&str] = &["NWBK", "BARC", "LOYD", "HBUK", "MIDL"];

const BRANCHES: &[(&str, &str)] = &[
    ("Midtown", "New York"),
    ("Embarcadero", "San Francisco"),
    ("Loop", "Chicago"),
    ("Back Bay", "Boston"),
    ("Capitol Hill", "Seattle"),
];

/// Transaction descriptions with their sign: purchases and fees debit,
/// deposits and refunds credit.
const DESCRIPTIONS: &[(&str, bool)] = &[
    ("Payroll deposit ACME Corp", true),
    ("Grocery store #0412", false),
    ("ATM withdrawal", false),
    ("Coffee shop", false),
    ("Utility bill - City Power & Light", false),
    ("Rent payment", false),
    ("Online transfer from savings", true),
    ("Card refund - Outdoor Outfitters", true),
    ("Streaming subscription", false),
    ("Pharmacy", false),
    ("Interest payment", true),
    ("Gas station", false),
];

/// The default demo size: big enough to page through, small to load fast.
pub fn demo_customer_count_default() -> usize {
    200
}

/// SQL that (re)creates the demo bank's tables (`branches`, `customers`,
/// `accounts`, `transactions`) in the current database and fills them
/// with `customers` fake customers, two or three accounts each and four
/// to six transactions per account. Runs in one transaction; needs only
/// the right to create tables in `public`.
pub fn demo_schema_sql(customers: usize) -> String {
    Bank::generate(customers, SEED).to_sql(Dialect::Postgres)
}

/// The same bank, same rows, for MySQL/MariaDB (`VARCHAR` and `DECIMAL`
/// columns, `AUTO_INCREMENT` ids, InnoDB foreign keys). Runs as one
/// transaction for the rows; the tables are (re)created first.
pub fn demo_schema_sql_mysql(customers: usize) -> String {
    Bank::generate(customers, SEED).to_sql(Dialect::MySql)
}

/// Which SQL the demo bank is written in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Postgres,
    MySql,
}

const MYSQL_SCHEMA: &str = "-- Gatehouse demo bank. Every name, number and address here is FAKE,\n\
     -- generated to look and validate like real personal data.\n\
     SET FOREIGN_KEY_CHECKS = 0;\n\
     DROP TABLE IF EXISTS transactions, accounts, customers, branches;\n\
     SET FOREIGN_KEY_CHECKS = 1;\n\
     CREATE TABLE branches (\n    id int AUTO_INCREMENT PRIMARY KEY,\n    name varchar(100) NOT NULL,\n    city varchar(100) NOT NULL,\n    routing_number varchar(20) NOT NULL\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\
     CREATE TABLE customers (\n    id int AUTO_INCREMENT PRIMARY KEY,\n    name varchar(200) NOT NULL,\n    email varchar(200) NOT NULL,\n    phone varchar(40),\n    ssn varchar(20),\n    \
     date_of_birth date,\n    card_number varchar(30),\n    account_number varchar(30),\n    iban varchar(40),\n    routing_number varchar(20),\n    \
     balance decimal(12,2) NOT NULL DEFAULT 0,\n    notes text,\n    created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\
     CREATE TABLE accounts (\n    id int AUTO_INCREMENT PRIMARY KEY,\n    customer_id int NOT NULL,\n    account_number varchar(30) NOT NULL,\n    \
     kind varchar(10) NOT NULL CHECK (kind IN ('checking', 'savings')),\n    balance decimal(12,2) NOT NULL DEFAULT 0,\n    opened_on date NOT NULL,\n    \
     KEY accounts_customer_id_idx (customer_id),\n    FOREIGN KEY (customer_id) REFERENCES customers(id)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\
     CREATE TABLE transactions (\n    id bigint AUTO_INCREMENT PRIMARY KEY,\n    account_id int NOT NULL,\n    amount decimal(12,2) NOT NULL,\n    \
     description varchar(200) NOT NULL,\n    posted_at datetime NOT NULL,\n    KEY transactions_account_id_idx (account_id),\n    \
     FOREIGN KEY (account_id) REFERENCES accounts(id)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\
     START TRANSACTION;\n";

struct Branch {
    name: String,
    city: &'static str,
    routing_number: &'static str,
}

struct Customer {
    name: String,
    email: String,
    phone: String,
    ssn: String,
    date_of_birth: String,
    card_number: String,
    account_number: String,
    iban: String,
    routing_number: &'static str,
    balance_cents: i64,
    notes: Option<String>,
}

struct Account {
    customer_id: usize,
    account_number: String,
    kind: &'static str,
    balance_cents: i64,
    opened_on: String,
}

struct Transaction {
    account_id: usize,
    amount_cents: i64,
    description: &'static str,
    posted_at: String,
}

/// All rows; ids are 1-based positions in each vector.
struct Bank {
    branches: Vec<Branch>,
    customers: Vec<Customer>,
    accounts: Vec<Account>,
    transactions: Vec<Transaction>,
}

impl Bank {
    fn generate(customer_count: usize, seed: u64) -> Bank {
        let mut rng = StdRng::seed_from_u64(seed);
        let branches = BRANCHES
            .iter()
            .zip(ROUTING_NUMBERS)
            .map(|(&(name, city), &routing_number)| Branch {
                name: format!("{name} Branch"),
                city,
                routing_number,
            })
            .collect();
        let mut bank = Bank {
            branches,
            customers: Vec::new(),
            accounts: Vec::new(),
            transactions: Vec::new(),
        };
        let mut emails_seen: HashMap<String, usize> = HashMap::new();
        for customer_id in 1..=customer_count {
            let first = pick(&mut rng, FIRST_NAMES);
            let last = pick(&mut rng, LAST_NAMES);
            let email = unique_email(&mut rng, &mut emails_seen, first, last);
            let mut customer = Customer {
                name: format!("{first} {last}"),
                email,
                phone: fake_phone(&mut rng),
                ssn: fake_ssn(&mut rng),
                date_of_birth: fake_date(&mut rng, 1940..=2004),
                card_number: fake_card(&mut rng),
                account_number: String::new(),
                iban: fake_iban(&mut rng),
                routing_number: pick(&mut rng, ROUTING_NUMBERS),
                balance_cents: 0,
                notes: None,
            };
            let account_count = rng.gen_range(2..=3);
            for n in 0..account_count {
                let kind = if n == 0 {
                    "checking"
                } else {
                    *["checking", "savings"]
                        .choose(&mut rng)
                        .unwrap_or(&"savings")
                };
                let limit = if kind == "savings" {
                    10_000_000
                } else {
                    2_500_000
                };
                let number_len = rng.gen_range(10..=12);
                let account = Account {
                    customer_id,
                    account_number: digits(&mut rng, number_len),
                    kind,
                    balance_cents: rng.gen_range(0..limit),
                    opened_on: fake_date(&mut rng, 2005..=2024),
                };
                if n == 0 {
                    customer.account_number = account.account_number.clone();
                }
                customer.balance_cents += account.balance_cents;
                bank.accounts.push(account);
                let account_id = bank.accounts.len();
                for _ in 0..rng.gen_range(4..=6) {
                    bank.transactions
                        .push(fake_transaction(&mut rng, account_id));
                }
            }
            customer.notes = fake_note(&mut rng, &customer);
            bank.customers.push(customer);
        }
        bank
    }

    fn to_sql(&self, dialect: Dialect) -> String {
        let mysql = dialect == Dialect::MySql;
        let lit = |v: &str| if mysql { lit_mysql(v) } else { lit(v) };
        let mut sql = String::with_capacity(600 + self.customers.len() * 2_000);
        if mysql {
            sql.push_str(MYSQL_SCHEMA);
        } else {
            sql.push_str(
            "-- Gatehouse demo bank. Every name, number and address here is FAKE,\n\
             -- generated to look and validate like real personal data.\n\
             SET client_min_messages = warning;\n\
             BEGIN;\n\
             DROP TABLE IF EXISTS transactions, accounts, customers, branches CASCADE;\n\
             CREATE TABLE branches (\n    id serial PRIMARY KEY,\n    name text NOT NULL,\n    city text NOT NULL,\n    routing_number text NOT NULL\n);\n\
             CREATE TABLE customers (\n    id serial PRIMARY KEY,\n    name text NOT NULL,\n    email text NOT NULL,\n    phone text,\n    ssn text,\n    \
             date_of_birth date,\n    card_number text,\n    account_number text,\n    iban text,\n    routing_number text,\n    \
             balance numeric(12,2) NOT NULL DEFAULT 0,\n    notes text,\n    created_at timestamptz NOT NULL DEFAULT now()\n);\n\
             CREATE TABLE accounts (\n    id serial PRIMARY KEY,\n    customer_id int NOT NULL REFERENCES customers(id),\n    account_number text NOT NULL,\n    \
             kind text NOT NULL CHECK (kind IN ('checking', 'savings')),\n    balance numeric(12,2) NOT NULL DEFAULT 0,\n    opened_on date NOT NULL\n);\n\
             CREATE INDEX accounts_customer_id_idx ON accounts (customer_id);\n\
             CREATE TABLE transactions (\n    id bigserial PRIMARY KEY,\n    account_id int NOT NULL REFERENCES accounts(id),\n    amount numeric(12,2) NOT NULL,\n    \
             description text NOT NULL,\n    posted_at timestamptz NOT NULL\n);\n\
             CREATE INDEX transactions_account_id_idx ON transactions (account_id);\n",
        );
        }
        insert_rows(
            &mut sql,
            "branches",
            "id, name, city, routing_number",
            &self.branches,
            |id, b| {
                format!(
                    "({id}, {}, {}, {})",
                    lit(&b.name),
                    lit(b.city),
                    lit(b.routing_number)
                )
            },
        );
        insert_rows(
            &mut sql,
            "customers",
            "id, name, email, phone, ssn, date_of_birth, card_number, account_number, iban, routing_number, balance, notes",
            &self.customers,
            |id, c| {
                format!(
                    "({id}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                    lit(&c.name),
                    lit(&c.email),
                    lit(&c.phone),
                    lit(&c.ssn),
                    lit(&c.date_of_birth),
                    lit(&c.card_number),
                    lit(&c.account_number),
                    lit(&c.iban),
                    lit(c.routing_number),
                    money(c.balance_cents),
                    c.notes.as_deref().map_or_else(|| "NULL".to_string(), lit),
                )
            },
        );
        insert_rows(
            &mut sql,
            "accounts",
            "id, customer_id, account_number, kind, balance, opened_on",
            &self.accounts,
            |id, a| {
                format!(
                    "({id}, {}, {}, {}, {}, {})",
                    a.customer_id,
                    lit(&a.account_number),
                    lit(a.kind),
                    money(a.balance_cents),
                    lit(&a.opened_on)
                )
            },
        );
        insert_rows(
            &mut sql,
            "transactions",
            "id, account_id, amount, description, posted_at",
            &self.transactions,
            |id, t| {
                format!(
                    "({id}, {}, {}, {}, {})",
                    t.account_id,
                    money(t.amount_cents),
                    lit(t.description),
                    lit(if mysql {
                        t.posted_at.trim_end_matches("+00")
                    } else {
                        &t.posted_at
                    })
                )
            },
        );
        if mysql {
            // AUTO_INCREMENT already continues after the explicit ids.
            sql.push_str("COMMIT;\n");
            return sql;
        }
        // Explicit ids were inserted; later inserts must continue after them.
        for (table, seq, rows) in [
            ("branches", "branches_id_seq", self.branches.len()),
            ("customers", "customers_id_seq", self.customers.len()),
            ("accounts", "accounts_id_seq", self.accounts.len()),
            (
                "transactions",
                "transactions_id_seq",
                self.transactions.len(),
            ),
        ] {
            let _ = writeln!(
                sql,
                "ALTER SEQUENCE {seq} RESTART WITH {}; -- after the {table} rows above",
                rows + 1
            );
        }
        sql.push_str("COMMIT;\n");
        sql
    }
}

/// Append multi-row INSERTs for `rows` (ids start at 1); nothing when empty.
fn insert_rows<T>(
    sql: &mut String,
    table: &str,
    columns: &str,
    rows: &[T],
    render: impl Fn(usize, &T) -> String,
) {
    for (chunk_index, chunk) in rows.chunks(ROWS_PER_INSERT).enumerate() {
        let _ = writeln!(sql, "INSERT INTO {table} ({columns}) VALUES");
        let first_id = chunk_index * ROWS_PER_INSERT + 1;
        let values: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, row)| format!("    {}", render(first_id + i, row)))
            .collect();
        sql.push_str(&values.join(",\n"));
        sql.push_str(";\n");
    }
}

/// An SQL string literal (standard_conforming_strings is on).
fn lit(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A MySQL string literal (backslash is an escape there by default).
fn lit_mysql(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Cents as a numeric(12,2) literal.
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        cents.unsigned_abs() / 100,
        cents.unsigned_abs() % 100
    )
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())]
}

/// `count` random decimal digits, the first non-zero.
fn digits(rng: &mut StdRng, count: usize) -> String {
    (0..count)
        .map(|i| {
            char::from(
                b'0' + if i == 0 {
                    rng.gen_range(1..=9)
                } else {
                    rng.gen_range(0..=9)
                },
            )
        })
        .collect()
}

fn unique_email(
    rng: &mut StdRng,
    seen: &mut HashMap<String, usize>,
    first: &str,
    last: &str,
) -> String {
    let local_part = |name: &str| {
        name.chars()
            .filter(char::is_ascii_alphabetic)
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let base = format!("{}.{}", local_part(first), local_part(last));
    let count = seen.entry(base.clone()).or_insert(0);
    *count += 1;
    let suffix = if *count == 1 {
        String::new()
    } else {
        count.to_string()
    };
    let domain = if rng.gen_bool(0.7) {
        "example.com"
    } else {
        "example.org"
    };
    format!("{base}{suffix}@{domain}")
}

/// A number in the 555-0100..555-0199 range reserved for fiction, in one
/// of the three common US notations.
fn fake_phone(rng: &mut StdRng) -> String {
    let area = pick(rng, AREA_CODES);
    let line = rng.gen_range(100..=199);
    match rng.gen_range(0..3) {
        0 => format!("({area}) 555-{line:04}"),
        1 => format!("{area}-555-{line:04}"),
        _ => format!("+1 {area} 555 {line:04}"),
    }
}

/// An SSN the SSA could issue: area 001-665 or 667-899, group 01-99,
/// serial 0001-9999.
fn fake_ssn(rng: &mut StdRng) -> String {
    let mut area = rng.gen_range(1..=898);
    if area >= 666 {
        area += 1;
    }
    format!(
        "{area:03}-{:02}-{:04}",
        rng.gen_range(1..=99),
        rng.gen_range(1..=9999)
    )
}

fn fake_date(rng: &mut StdRng, years: std::ops::RangeInclusive<u32>) -> String {
    format!(
        "{}-{:02}-{:02}",
        rng.gen_range(years),
        rng.gen_range(1..=12),
        rng.gen_range(1..=28)
    )
}

/// A Luhn-valid Visa, Mastercard or Amex number, written plain, with
/// spaces or with dashes (people and systems store all three).
fn fake_card(rng: &mut StdRng) -> String {
    let (prefix, len, groups): (String, usize, &[usize]) = match rng.gen_range(0..10) {
        0..=4 => ("4".to_string(), 16, &[4, 4, 4, 4]),
        5..=6 => (format!("5{}", rng.gen_range(1..=5)), 16, &[4, 4, 4, 4]),
        7 => (rng.gen_range(2221..=2720).to_string(), 16, &[4, 4, 4, 4]),
        _ => (
            if rng.gen_bool(0.5) { "34" } else { "37" }.to_string(),
            15,
            &[4, 6, 5],
        ),
    };
    let mut number = prefix;
    while number.len() < len - 1 {
        number.push(char::from(b'0' + rng.gen_range(0..=9)));
    }
    number.push(char::from(b'0' + luhn_check_digit(&number)));
    match rng.gen_range(0..3) {
        0 => number,
        1 => group(&number, groups, ' '),
        _ => group(&number, groups, '-'),
    }
}

fn group(number: &str, sizes: &[usize], separator: char) -> String {
    let mut out = String::new();
    let mut start = 0;
    for (i, size) in sizes.iter().enumerate() {
        if i > 0 {
            out.push(separator);
        }
        out.push_str(&number[start..start + size]);
        start += size;
    }
    out
}

/// The digit that makes `payload` + digit pass the Luhn check: doubling
/// starts at the payload's last digit because the check digit follows it.
fn luhn_check_digit(payload: &str) -> u8 {
    let sum: u32 = payload
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    u8::try_from((10 - sum % 10) % 10).unwrap_or(0)
}

/// A German or British IBAN with correct ISO 13616 check digits, half of
/// them printed in groups of four.
fn fake_iban(rng: &mut StdRng) -> String {
    let (country, bban) = if rng.gen_bool(0.5) {
        let mut account = String::new();
        for _ in 0..10 {
            account.push(char::from(b'0' + rng.gen_range(0..=9)));
        }
        ("DE", format!("{}{account}", pick(rng, DE_BANK_CODES)))
    } else {
        let sort_code = rng.gen_range(100_000..=999_999);
        let account = rng.gen_range(10_000_000..=99_999_999);
        (
            "GB",
            format!("{}{sort_code}{account}", pick(rng, GB_BANK_CODES)),
        )
    };
    let iban = format!("{country}{}{bban}", iban_check_digits(country, &bban));
    if rng.gen_bool(0.5) {
        let chars: Vec<char> = iban.chars().collect();
        chars
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        iban
    }
}

/// ISO 13616 check digits: 98 minus (BBAN + country + "00", letters as
/// 10..35) mod 97, computed digit by digit to stay within u32.
fn iban_check_digits(country: &str, bban: &str) -> String {
    let remainder =
        format!("{bban}{country}00")
            .chars()
            .fold(0u32, |acc, c| match c.to_digit(36) {
                Some(v) if v >= 10 => (acc * 100 + v) % 97,
                Some(v) => (acc * 10 + v) % 97,
                None => acc,
            });
    format!("{:02}", 98 - remainder)
}

fn fake_transaction(rng: &mut StdRng, account_id: usize) -> Transaction {
    let (description, credit) = pick(rng, DESCRIPTIONS);
    let cents: i64 = if credit {
        rng.gen_range(1_000..=450_000)
    } else {
        rng.gen_range(150..=95_000)
    };
    let posted_at = format!(
        "2024-{:02}-{:02} {:02}:{:02}:{:02}+00",
        rng.gen_range(1..=12),
        rng.gen_range(1..=28),
        rng.gen_range(0..24),
        rng.gen_range(0..60),
        rng.gen_range(0..60)
    );
    Transaction {
        account_id,
        amount_cents: if credit { cents } else { -cents },
        description,
        posted_at,
    }
}

/// What an agent might type: sometimes the customer's SSN, card, e-mail,
/// phone or IBAN inline, sometimes nothing sensitive, sometimes nothing.
fn fake_note(rng: &mut StdRng, c: &Customer) -> Option<String> {
    let note = match rng.gen_range(0..10) {
        0 => format!(
            "Called to dispute charge on card {}; verified SSN {}.",
            c.card_number, c.ssn
        ),
        1 => format!("Identity verified in branch with SSN {}.", c.ssn),
        2 => format!("Prefers contact by email: {}.", c.email),
        3 => format!(
            "Fraud alert: card {} reported lost, replacement issued.",
            c.card_number
        ),
        4 => format!(
            "Call back at {} after 5pm about mortgage pre-approval.",
            c.phone
        ),
        5 => format!("Outgoing wire to {} approved by branch manager.", c.iban),
        6 => "Requested paper statements.".to_string(),
        7 => "Updated mailing address on file.".to_string(),
        8 => "VIP customer; waive overdraft fees.".to_string(),
        _ => return None,
    };
    Some(note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_testbed::pgcluster::{PgAuth, PgCluster, PgClusterOptions};

    // Validators written independently of the generators above.

    fn luhn_valid(number: &str) -> bool {
        let digits: Vec<u32> = number
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .map(|c| c.to_digit(10).unwrap_or(99))
            .collect();
        if digits.iter().any(|&d| d > 9) || digits.len() < 12 {
            return false;
        }
        let mut sum = 0;
        for (i, d) in digits.iter().rev().enumerate() {
            sum += if i % 2 == 1 {
                [0, 2, 4, 6, 8, 1, 3, 5, 7, 9][*d as usize]
            } else {
                *d
            };
        }
        sum % 10 == 0
    }

    fn card_brand_ok(number: &str) -> bool {
        let plain: String = number.chars().filter(char::is_ascii_digit).collect();
        let p2: u32 = plain[..2].parse().unwrap();
        let p4: u32 = plain[..4].parse().unwrap();
        match plain.len() {
            16 => plain.starts_with('4') || (51..=55).contains(&p2) || (2221..=2720).contains(&p4),
            15 => p2 == 34 || p2 == 37,
            _ => false,
        }
    }

    fn iban_valid(iban: &str) -> bool {
        let compact: String = iban.chars().filter(|c| *c != ' ').collect();
        let expected_len = match &compact[..2] {
            "DE" | "GB" => 22,
            _ => return false,
        };
        if compact.len() != expected_len
            || !compact
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return false;
        }
        let rearranged = format!("{}{}", &compact[4..], &compact[..4]);
        let numeric: String = rearranged
            .chars()
            .map(|c| c.to_digit(36).unwrap().to_string())
            .collect();
        // Piecewise mod 97: the remainder so far plus seven digits fits in a u64.
        let mut rem = String::new();
        for chunk in numeric.as_bytes().chunks(7) {
            let block = format!("{rem}{}", std::str::from_utf8(chunk).unwrap());
            rem = (block.parse::<u64>().unwrap() % 97).to_string();
        }
        rem == "1"
    }

    fn aba_valid(routing: &str) -> bool {
        let d: Vec<u32> = routing.chars().filter_map(|c| c.to_digit(10)).collect();
        d.len() == 9
            && routing.len() == 9
            && (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8])
                .is_multiple_of(10)
    }

    fn ssn_valid(ssn: &str) -> bool {
        let parts: Vec<&str> = ssn.split('-').collect();
        if parts.len() != 3 || parts[0].len() != 3 || parts[1].len() != 2 || parts[2].len() != 4 {
            return false;
        }
        let (Ok(area), Ok(group), Ok(serial)) = (
            parts[0].parse::<u32>(),
            parts[1].parse::<u32>(),
            parts[2].parse::<u32>(),
        ) else {
            return false;
        };
        (1..=899).contains(&area) && area != 666 && group != 0 && serial != 0
    }

    fn phone_fictional(phone: &str) -> bool {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        let national = digits
            .strip_prefix('1')
            .filter(|_| phone.starts_with("+1"))
            .unwrap_or(&digits);
        national.len() == 10 && &national[3..6] == "555" && &national[6..8] == "01"
    }

    #[test]
    fn validators_accept_known_good_and_reject_known_bad_values() {
        assert!(luhn_valid("4111 1111 1111 1111") && !luhn_valid("4111 1111 1111 1112"));
        assert!(luhn_valid("378282246310005"));
        assert!(iban_valid("DE89 3704 0044 0532 0130 00") && iban_valid("GB82WEST12345698765432"));
        assert!(!iban_valid("GB83WEST12345698765432"));
        assert!(ROUTING_NUMBERS.iter().all(|r| aba_valid(r)) && !aba_valid("021000022"));
        assert!(ssn_valid("123-45-6789"));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "12-345-6789",
        ] {
            assert!(!ssn_valid(bad), "{bad}");
        }
    }

    #[test]
    fn check_digit_helpers_match_published_examples() {
        assert_eq!(luhn_check_digit("411111111111111"), 1);
        assert_eq!(luhn_check_digit("37828224631000"), 5);
        assert_eq!(iban_check_digits("DE", "370400440532013000"), "89");
        assert_eq!(iban_check_digits("GB", "WEST12345698765432"), "82");
        assert_eq!(money(-1234), "-12.34");
        assert_eq!(money(5), "0.05");
        assert_eq!(lit("O'Brien"), "'O''Brien'");
    }

    #[test]
    fn generated_values_validate_for_many_seeds() {
        for seed in 0..100 {
            let bank = Bank::generate(25, seed);
            for c in &bank.customers {
                assert!(
                    luhn_valid(&c.card_number) && card_brand_ok(&c.card_number),
                    "seed {seed}: card {}",
                    c.card_number
                );
                assert!(iban_valid(&c.iban), "seed {seed}: iban {}", c.iban);
                assert!(ssn_valid(&c.ssn), "seed {seed}: ssn {}", c.ssn);
                assert!(aba_valid(c.routing_number));
                assert!(phone_fictional(&c.phone), "seed {seed}: phone {}", c.phone);
                assert!(
                    c.email.ends_with("@example.com") || c.email.ends_with("@example.org"),
                    "{}",
                    c.email
                );
                assert!(
                    (10..=12).contains(&c.account_number.len())
                        && c.account_number.chars().all(|ch| ch.is_ascii_digit())
                );
            }
            let accounts_per_customer =
                |id| bank.accounts.iter().filter(|a| a.customer_id == id).count();
            assert!(
                (1..=bank.customers.len()).all(|id| (2..=3).contains(&accounts_per_customer(id)))
            );
            let tx_per_account = |id| {
                bank.transactions
                    .iter()
                    .filter(|t| t.account_id == id)
                    .count()
            };
            assert!((1..=bank.accounts.len()).all(|id| (4..=6).contains(&tx_per_account(id))));
        }
    }

    #[test]
    fn ssn_areas_cover_the_whole_valid_range() {
        let mut rng = StdRng::seed_from_u64(7);
        let areas: Vec<u32> = (0..20_000)
            .map(|_| fake_ssn(&mut rng)[..3].parse().unwrap())
            .collect();
        assert!(areas.iter().all(|&a| (1..=899).contains(&a) && a != 666));
        assert!(
            areas.contains(&1)
                && areas.contains(&665)
                && areas.contains(&667)
                && areas.contains(&899)
        );
    }

    #[test]
    fn sql_is_deterministic_and_sized_by_the_customer_count() {
        assert_eq!(demo_schema_sql(40), demo_schema_sql(40));
        assert_ne!(demo_schema_sql(40), demo_schema_sql(41));
        assert_eq!(demo_customer_count_default(), 200);
        let empty = demo_schema_sql(0);
        assert!(
            empty.contains("CREATE TABLE customers") && !empty.contains("INSERT INTO customers")
        );
        // Only the reserved example domains appear.
        let sql = demo_schema_sql(200);
        for word in
            sql.split(|c: char| c.is_whitespace() || matches!(c, '\'' | ',' | '(' | ')' | ';'))
        {
            if let Some((_, domain)) = word.split_once('@') {
                assert!(
                    domain.trim_end_matches('.') == "example.com"
                        || domain.trim_end_matches('.') == "example.org",
                    "{word}"
                );
            }
        }
    }

    #[test]
    fn notes_mix_inline_pii_with_harmless_text() {
        let bank = Bank::generate(60, SEED);
        let notes: Vec<(&Customer, &str)> = bank
            .customers
            .iter()
            .filter_map(|c| c.notes.as_deref().map(|n| (c, n)))
            .collect();
        let with_ssn = notes.iter().filter(|(c, n)| n.contains(&c.ssn)).count();
        let with_card = notes
            .iter()
            .filter(|(c, n)| n.contains(&c.card_number))
            .count();
        let without_digits = notes
            .iter()
            .filter(|(_, n)| !n.chars().any(|ch| ch.is_ascii_digit()))
            .count();
        // The integration tests look for at least five SSN notes in 60 customers.
        assert!(with_ssn >= 5, "{with_ssn}");
        assert!(with_card >= 3, "{with_card}");
        assert!(without_digits >= 5, "{without_digits}");
        assert!(
            notes.len() < bank.customers.len(),
            "some customers have no note"
        );
    }

    #[tokio::test]
    async fn schema_loads_into_postgres_with_valid_values() {
        let customers = 120;
        let cluster = tokio::task::spawn_blocking(move || -> anyhow::Result<PgCluster> {
            let cluster = PgCluster::start(PgClusterOptions {
                auth: PgAuth::Scram,
                ..PgClusterOptions::default()
            })?;
            cluster.create_role("bank_app", "bank-app-pw", false)?;
            cluster.create_database("bank", "bank_app")?;
            // Loads as the unprivileged owner, twice: the script recreates its tables.
            cluster.psql(
                "bank",
                &format!("SET ROLE bank_app;\n{}", demo_schema_sql(customers)),
            )?;
            cluster.psql(
                "bank",
                &format!("SET ROLE bank_app;\n{}", demo_schema_sql(customers)),
            )?;
            cluster.create_database("empty", "bank_app")?;
            cluster.psql(
                "empty",
                &format!("SET ROLE bank_app;\n{}", demo_schema_sql(0)),
            )?;
            Ok(cluster)
        })
        .await
        .unwrap()
        .unwrap();

        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=bank_app password=bank-app-pw dbname=bank",
                cluster.port()
            ),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let count = |table: &'static str| {
            let client = &client;
            async move {
                client
                    .query_one(&format!("select count(*) from {table}"), &[])
                    .await
                    .unwrap()
                    .get::<_, i64>(0)
            }
        };
        let n = customers as i64;
        assert_eq!(count("customers").await, n);
        assert_eq!(count("branches").await, BRANCHES.len() as i64);
        let accounts = count("accounts").await;
        assert!((2 * n..=3 * n).contains(&accounts), "{accounts}");
        let transactions = count("transactions").await;
        assert!(
            (4 * accounts..=6 * accounts).contains(&transactions),
            "{transactions}"
        );

        let rows = client.query("select ssn, card_number, iban, routing_number, email, phone, notes from customers order by id", &[]).await.unwrap();
        let mut emails = std::collections::HashSet::new();
        for row in &rows {
            let (ssn, card, iban, routing): (String, String, String, String) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            assert!(ssn_valid(&ssn), "{ssn}");
            assert!(luhn_valid(&card) && card_brand_ok(&card), "{card}");
            assert!(iban_valid(&iban), "{iban}");
            assert!(aba_valid(&routing), "{routing}");
            assert!(emails.insert(row.get::<_, String>(4)), "duplicate email");
            assert!(phone_fictional(&row.get::<_, String>(5)));
        }
        let routing: Vec<String> = client
            .query("select routing_number from branches", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(routing.iter().all(|r| aba_valid(r)));
        // Customers' balances are the sums of their accounts'.
        let mismatched: i64 = client
            .query_one(
                "select count(*) from customers c where c.balance <> (select sum(a.balance) from accounts a where a.customer_id = c.id)",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(mismatched, 0);
        // Names with apostrophes survived quoting, and sequences continue after the explicit ids.
        let apostrophes: i64 = client
            .query_one("select count(*) from customers where name like '%''%'", &[])
            .await
            .unwrap()
            .get(0);
        assert!(apostrophes > 0);
        let next: i32 = client
            .query_one("insert into customers (name, email) values ('New Person', 'new.person@example.com') returning id", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(next, customers as i32 + 1);
        let ssn_notes: i64 = client
            .query_one(
                r"select count(*) from customers where notes ~ '\d{3}-\d{2}-\d{4}'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(ssn_notes >= 5, "{ssn_notes}");

        let empty = cluster
            .psql("empty", "select count(*) from customers;")
            .unwrap();
        assert!(empty.lines().any(|l| l.trim() == "0"), "{empty}");
        drop(client);
        tokio::task::spawn_blocking(move || drop(cluster))
            .await
            .unwrap();
    }
}
