// SQL tokenizer implementation matching libinjection C version

use crate::libinjection::{SqliFlags, sqli_data};

// portcullis: the character parsers, in tokenizer/.
mod punct;
mod strings;
mod words;

// Token type constants matching C version
const TYPE_NONE: u8 = 0;
const TYPE_KEYWORD: u8 = b'k';
const TYPE_UNION: u8 = b'U';
const TYPE_GROUP: u8 = b'B';
const TYPE_EXPRESSION: u8 = b'E';
const TYPE_SQLTYPE: u8 = b't';
const TYPE_FUNCTION: u8 = b'f';
const TYPE_BAREWORD: u8 = b'n';
const TYPE_NUMBER: u8 = b'1';
const TYPE_VARIABLE: u8 = b'v';
const TYPE_STRING: u8 = b's';
const TYPE_OPERATOR: u8 = b'o';
const TYPE_LOGIC_OPERATOR: u8 = b'&';
const TYPE_COMMENT: u8 = b'c';
const TYPE_COLLATE: u8 = b'A';
const TYPE_LEFTPARENS: u8 = b'(';
const TYPE_RIGHTPARENS: u8 = b')';
const TYPE_LEFTBRACE: u8 = b'{';
const TYPE_RIGHTBRACE: u8 = b'}';
const TYPE_DOT: u8 = b'.';
const TYPE_COMMA: u8 = b',';
const TYPE_COLON: u8 = b':';
const TYPE_SEMICOLON: u8 = b';';
const TYPE_TSQL: u8 = b'T';
const TYPE_UNKNOWN: u8 = b'?';
const TYPE_EVIL: u8 = b'X';
const TYPE_FINGERPRINT: u8 = b'F';
const TYPE_BACKSLASH: u8 = b'\\';

// Character constants
pub(crate) const CHAR_NULL: u8 = b'\0';
const CHAR_SINGLE: u8 = b'\'';
const CHAR_DOUBLE: u8 = b'"';
const CHAR_TICK: u8 = b'`';

// SQL injection limits
const LIBINJECTION_SQLI_TOKEN_SIZE: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    None,
    Keyword,
    Union,
    Group,
    Expression,
    SqlType,
    Function,
    Bareword,
    Number,
    Variable,
    String,
    Operator,
    LogicOperator,
    Comment,
    Collate,
    LeftParenthesis,
    RightParenthesis,
    LeftBrace,
    RightBrace,
    Dot,
    Comma,
    Colon,
    Semicolon,
    Tsql,
    Unknown,
    Evil,
    Fingerprint,
    Backslash,
}

impl TokenType {
    pub fn to_char(&self) -> char {
        match self {
            TokenType::None => '\0',
            TokenType::Keyword => 'k',
            TokenType::Union => 'U',
            TokenType::Group => 'B',
            TokenType::Expression => 'E',
            TokenType::SqlType => 't',
            TokenType::Function => 'f',
            TokenType::Bareword => 'n',
            TokenType::Number => '1',
            TokenType::Variable => 'v',
            TokenType::String => 's',
            TokenType::Operator => 'o',
            TokenType::LogicOperator => '&',
            TokenType::Comment => 'c',
            TokenType::Collate => 'A',
            TokenType::LeftParenthesis => '(',
            TokenType::RightParenthesis => ')',
            TokenType::LeftBrace => '{',
            TokenType::RightBrace => '}',
            TokenType::Dot => '.',
            TokenType::Comma => ',',
            TokenType::Colon => ':',
            TokenType::Semicolon => ';',
            TokenType::Tsql => 'T',
            TokenType::Unknown => '?',
            TokenType::Evil => 'X',
            TokenType::Fingerprint => 'F',
            TokenType::Backslash => '\\',
        }
    }
}

#[derive(Debug, Clone)]
pub struct Token {
    pub token_type: TokenType,
    pub pos: usize,
    pub len: usize,
    pub val: [u8; 32],
    pub str_open: u8,
    pub str_close: u8,
    pub count: i32,
}

impl Token {
    pub fn new() -> Self {
        Self {
            token_type: TokenType::None,
            pos: 0,
            len: 0,
            val: [0; 32],
            str_open: CHAR_NULL,
            str_close: CHAR_NULL,
            count: 0,
        }
    }
    
    pub fn value_as_str(&self) -> &str {
        let end = self.len.min(32);
        // For display purposes, show lossy conversion to handle 0xFF bytes
        // This won't affect tokenization logic, only debugging output
        std::str::from_utf8(&self.val[..end]).unwrap_or("<binary>")
    }
    
    pub fn clear(&mut self) {
        *self = Self::new();
    }
    
    pub fn assign_char(&mut self, token_type: u8, pos: usize, value: u8) {
        self.token_type = byte_to_token_type(token_type);
        self.pos = pos;
        self.len = 1;
        self.val[0] = value;
        self.val[1] = CHAR_NULL;
        // Note: str_open, str_close, and count are NOT reset to preserve variable info like C st_assign_char()
    }
    
    pub fn assign(&mut self, token_type: u8, pos: usize, len: usize, value: &[u8]) {
        let copy_len = len.min(LIBINJECTION_SQLI_TOKEN_SIZE - 1);
        let actual_copy_len = copy_len.min(value.len());
        self.token_type = byte_to_token_type(token_type);
        self.pos = pos;
        self.len = actual_copy_len;
        
        // Clear the value array first
        self.val = [0; 32];
        
        // Copy the value
        for i in 0..actual_copy_len {
            self.val[i] = value[i];
        }
        
        self.val[actual_copy_len] = CHAR_NULL;
        // Note: str_open, str_close, and count are NOT reset to preserve variable info like C st_assign()
    }
    
    pub fn copy_from(&mut self, other: &Token) {
        *self = other.clone();
    }
}

fn byte_to_token_type(b: u8) -> TokenType {
    match b {
        TYPE_KEYWORD => TokenType::Keyword,
        TYPE_UNION => TokenType::Union,
        TYPE_GROUP => TokenType::Group,
        TYPE_EXPRESSION => TokenType::Expression,
        TYPE_SQLTYPE => TokenType::SqlType,
        TYPE_FUNCTION => TokenType::Function,
        TYPE_BAREWORD => TokenType::Bareword,
        TYPE_NUMBER => TokenType::Number,
        TYPE_VARIABLE => TokenType::Variable,
        TYPE_STRING => TokenType::String,
        TYPE_OPERATOR => TokenType::Operator,
        TYPE_LOGIC_OPERATOR => TokenType::LogicOperator,
        TYPE_COMMENT => TokenType::Comment,
        TYPE_COLLATE => TokenType::Collate,
        TYPE_LEFTPARENS => TokenType::LeftParenthesis,
        TYPE_RIGHTPARENS => TokenType::RightParenthesis,
        TYPE_LEFTBRACE => TokenType::LeftBrace,
        TYPE_RIGHTBRACE => TokenType::RightBrace,
        TYPE_DOT => TokenType::Dot,
        TYPE_COMMA => TokenType::Comma,
        TYPE_COLON => TokenType::Colon,
        TYPE_SEMICOLON => TokenType::Semicolon,
        TYPE_TSQL => TokenType::Tsql,
        TYPE_UNKNOWN => TokenType::Unknown,
        TYPE_EVIL => TokenType::Evil,
        TYPE_FINGERPRINT => TokenType::Fingerprint,
        TYPE_BACKSLASH => TokenType::Backslash,
        _ => TokenType::None,
    }
}

fn token_type_to_byte(t: TokenType) -> u8 {
    match t {
        TokenType::Keyword => TYPE_KEYWORD,
        TokenType::Union => TYPE_UNION,
        TokenType::Group => TYPE_GROUP,
        TokenType::Expression => TYPE_EXPRESSION,
        TokenType::SqlType => TYPE_SQLTYPE,
        TokenType::Function => TYPE_FUNCTION,
        TokenType::Bareword => TYPE_BAREWORD,
        TokenType::Number => TYPE_NUMBER,
        TokenType::Variable => TYPE_VARIABLE,
        TokenType::String => TYPE_STRING,
        TokenType::Operator => TYPE_OPERATOR,
        TokenType::LogicOperator => TYPE_LOGIC_OPERATOR,
        TokenType::Comment => TYPE_COMMENT,
        TokenType::Collate => TYPE_COLLATE,
        TokenType::LeftParenthesis => TYPE_LEFTPARENS,
        TokenType::RightParenthesis => TYPE_RIGHTPARENS,
        TokenType::LeftBrace => TYPE_LEFTBRACE,
        TokenType::RightBrace => TYPE_RIGHTBRACE,
        TokenType::Dot => TYPE_DOT,
        TokenType::Comma => TYPE_COMMA,
        TokenType::Colon => TYPE_COLON,
        TokenType::Semicolon => TYPE_SEMICOLON,
        TokenType::Tsql => TYPE_TSQL,
        TokenType::Unknown => TYPE_UNKNOWN,
        TokenType::Evil => TYPE_EVIL,
        TokenType::Fingerprint => TYPE_FINGERPRINT,
        TokenType::Backslash => TYPE_BACKSLASH,
        _ => TYPE_NONE,
    }
}

// Lookup function type
type LookupFn = dyn Fn(&str) -> TokenType;

pub struct SqliTokenizer<'a> {
    input: &'a [u8],
    flags: SqliFlags,
    pos: usize,
    current: Token,
    lookup_fn: Option<&'a LookupFn>,
    pub stats_comment_c: i32,
    pub stats_comment_ddw: i32,
    pub stats_comment_ddx: i32,
    pub stats_comment_hash: i32,
}

impl<'a> SqliTokenizer<'a> {
    pub fn new(input: &'a [u8], flags: SqliFlags) -> Self {
        Self {
            input,
            flags,
            pos: 0,
            current: Token::new(),
            lookup_fn: None,
            stats_comment_c: 0,
            stats_comment_ddw: 0,
            stats_comment_ddx: 0,
            stats_comment_hash: 0,
        }
    }
    
    pub fn with_lookup_fn(mut self, lookup_fn: &'a LookupFn) -> Self {
        self.lookup_fn = Some(lookup_fn);
        self
    }
    
    fn lookup_word_bytes(&self, word: &[u8]) -> TokenType {
        match self.lookup_fn {
            Some(lookup_fn) => match std::str::from_utf8(word) {
                Ok(word) => lookup_fn(word),
                Err(_) => TokenType::Bareword,
            },
            None => sqli_data::lookup_word_bytes(word),
        }
    }

    fn lookup_word(&self, word: &str) -> TokenType {
        if let Some(lookup_fn) = self.lookup_fn {
            lookup_fn(word)
        } else {
            sqli_data::lookup_word(word)
        }
    }
    
    // Main tokenization function - matches libinjection_sqli_tokenize
    pub fn next_token(&mut self) -> Option<Token> {
        if self.input.is_empty() || self.pos >= self.input.len() {
            return None;
        }
        
        self.current.clear();
        
        // Handle quote context at start of string - matches C behavior
        let quote_context = self.flags.quote_context();
        if self.pos == 0 && quote_context != b'\0' {
            // FIXED: Parse only first token as string like C does with parse_string_core
            return self.parse_first_token_with_quote_context(quote_context);
        }
        
        while self.pos < self.input.len() {
            let ch = self.input[self.pos];
            let new_pos = self.dispatch_char_parser(ch);
            self.pos = new_pos;
            
            if self.current.token_type != TokenType::None {
                return Some(self.current.clone());
            }
        }
        
        None
    }
    
    fn parse_first_token_with_quote_context(&mut self, quote_char: u8) -> Option<Token> {
        // FIXED: Implements exact C behavior from libinjection_sqli.c parse_string_core function
        // Called from libinjection_sqli.c:1216: parse_string_core(s, slen, 0, current, flag2delim(sf->flags), 0)
        // This handles FLAG_QUOTE_DOUBLE context where input is treated as if starting with a quote
        
        let start_pos = self.pos; // Should be 0 for first token
        let len = self.input.len();
        let pos = start_pos; // 0 for first token
        let offset = 0; // simulated quote (libinjection_sqli.c:624 comment explains offset parameter)
        
        // Step 1: Find first quote occurrence
        // From libinjection_sqli.c:627-628: memchr(cs + pos + offset, delim, len - pos - offset)
        let search_start = pos + offset;
        let search_len = len - pos - offset;
        
        let mut qpos_idx = None;
        for i in search_start..(search_start + search_len) {
            if self.input[i] == quote_char {
                qpos_idx = Some(i);
                break;
            }
        }
        
        // From libinjection_sqli.c:638-643: Set str_open based on offset
        // offset = 0 means "simulated quote", so str_open = CHAR_NULL
        self.current.str_open = CHAR_NULL;
        
        // Main parsing loop from libinjection_sqli.c:645-672
        while let Some(qpos) = qpos_idx {
            // Check backslash escape - libinjection_sqli.c:655
            // C: is_backslash_escaped(qpos - 1, cs + pos + offset)
            if qpos > pos + offset {
                let check_pos = qpos - 1;
                let start_pos_for_escape = pos + offset;
                
                // Implement libinjection_sqli.c:586-606 is_backslash_escaped function exactly
                let mut backslash_count = 0;
                let mut ptr = check_pos;
                
                // libinjection_sqli.c:600-604: Count consecutive backslashes backwards
                loop {
                    if ptr < start_pos_for_escape || self.input[ptr] != b'\\' {
                        break;
                    }
                    backslash_count += 1;
                    if ptr == 0 {
                        break;
                    }
                    ptr -= 1;
                }
                
                // libinjection_sqli.c:605-606: If odd number of backslashes, it's escaped
                if backslash_count & 1 == 1 {
                    // libinjection_sqli.c:656-659: Continue search from qpos + 1
                    qpos_idx = None;
                    for i in (qpos + 1)..len {
                        if self.input[i] == quote_char {
                            qpos_idx = Some(i);
                            break;
                        }
                    }
                    continue;
                }
            }
            
            // Check double delimiter escape - libinjection_sqli.c:660
            // C: is_double_delim_escaped(qpos, cs + len)
            // Implements libinjection_sqli.c:610-612: ((cur + 1) < end) && *(cur + 1) == *cur
            if qpos + 1 < len && self.input[qpos + 1] == quote_char {
                // libinjection_sqli.c:661-664: Continue search from qpos + 2
                qpos_idx = None;
                for i in (qpos + 2)..len {
                    if self.input[i] == quote_char {
                        qpos_idx = Some(i);
                        break;
                    }
                }
                continue;
            }
            
            // Found unescaped quote - libinjection_sqli.c:666-670
            // C: st_assign(st, TYPE_STRING, pos + offset, qpos - (cs + pos + offset), cs + pos + offset)
            let content_start = pos + offset;
            let content_len = qpos - content_start;
            let content = &self.input[content_start..(content_start + content_len)];
            
            self.current.assign(TYPE_STRING, content_start, content_len, content);
            self.current.str_close = quote_char; // libinjection_sqli.c:669
            
            // libinjection_sqli.c:670: return (size_t)(qpos - cs + 1)
            self.pos = qpos + 1;
            return Some(self.current.clone());
        }
        
        // No closing quote found - libinjection_sqli.c:646-654
        // C: st_assign(st, TYPE_STRING, pos + offset, len - pos - offset, cs + pos + offset)
        let content = &self.input[start_pos..];
        self.current.assign(TYPE_STRING, start_pos, self.input.len() - start_pos, content);
        self.current.str_close = CHAR_NULL; // libinjection_sqli.c:653
        self.pos = self.input.len(); // libinjection_sqli.c:654: return len
        
        Some(self.current.clone())
    }
    
    // Character dispatch function - matches char_parse_map in C
    fn dispatch_char_parser(&mut self, ch: u8) -> usize {
        use crate::libinjection::sqli_data::{get_char_type, CharType};
        
        // Use the generated lookup table - same as C implementation
        match get_char_type(ch) {
            CharType::White => self.parse_white(),
            CharType::Bang => self.parse_operator2(),
            CharType::String => self.parse_string(),
            CharType::Hash => self.parse_hash(),
            CharType::Money => self.parse_money(),
            CharType::Op1 | CharType::Unary => self.parse_operator1(),
            CharType::Op2 => self.parse_operator2(),
            CharType::LeftParens | CharType::RightParens | CharType::Comma | 
            CharType::Semicolon | CharType::LeftBrace | CharType::RightBrace => self.parse_char(),
            CharType::Dash => self.parse_dash(),
            CharType::Number => self.parse_number(),
            CharType::Slash => self.parse_slash(),
            CharType::Variable => self.parse_var(),
            CharType::Word => self.parse_word(),     // This now handles UTF-8 bytes 128-255!
            CharType::BString => self.parse_bstring(),
            CharType::EString => self.parse_estring(),
            CharType::NQString => self.parse_nqstring(),
            CharType::QString => self.parse_qstring(),
            CharType::UString => self.parse_ustring(),
            CharType::XString => self.parse_xstring(),
            CharType::BWord => self.parse_bword(),
            CharType::Backslash => self.parse_backslash(),
            CharType::Tick => self.parse_tick(),
            CharType::Other => self.parse_other(),
        }
    }
}

/// portcullis: the bytes that end a word, as C's `strlencspn` set in
/// `parse_word`: `" []{}<>:\\?=@!#~+-*/&|^%(),';\t\n\v\f\r\"\xA0\0"`.
const WORD_DELIMITERS: [bool; 256] = {
    let set = b" []{}<>:\\?=@!#~+-*/&|^%(),';\t\n\x0B\x0C\r\"\xA0\x00";
    let mut table = [false; 256];
    let mut i = 0;
    while i < set.len() {
        table[set[i] as usize] = true;
        i += 1;
    }
    table
};
