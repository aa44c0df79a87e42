// portcullis: the tokenizer's parsers of white space, operators and comments, moved out of tokenizer.rs.

use super::*;

impl<'a> SqliTokenizer<'a> {
    // Parser implementations matching C version exactly
    
    pub(super) fn parse_white(&mut self) -> usize {
        self.pos + 1
    }
    
    pub(super) fn parse_operator1(&mut self) -> usize {
        let ch = self.input[self.pos];
        self.current.assign_char(TYPE_OPERATOR, self.pos, ch);
        self.pos + 1
    }
    
    pub(super) fn parse_operator2(&mut self) -> usize {
        let pos = self.pos;
        let slen = self.input.len();
        
        // Boundary check - if not enough characters for 2-char operator, fallback
        if pos + 1 >= slen {
            return self.parse_operator1();
        }
        
        // First check for 3-character operator <=> (special case in C)
        if pos + 2 < slen && 
           self.input[pos] == b'<' && self.input[pos + 1] == b'=' && self.input[pos + 2] == b'>' {
            let op = [b'<', b'=', b'>'];
            self.current.assign(TYPE_OPERATOR, pos, 3, &op);
            return pos + 3;
        }
        
        // Try 2-character operator lookup using the comprehensive table
        // Only attempt lookup if bytes form valid UTF-8, since operators are ASCII-only
        let two_char = &self.input[pos..pos + 2];
        if let Ok(two_char_str) = std::str::from_utf8(two_char) {
            let token_type = self.lookup_word(two_char_str);
            if token_type != TokenType::None && token_type != TokenType::Bareword {
                // Found a 2-character operator in the lookup table
                let type_byte = match token_type {
                    TokenType::Operator => TYPE_OPERATOR,
                    TokenType::LogicOperator => TYPE_LOGIC_OPERATOR,
                    _ => TYPE_OPERATOR, // Default fallback
                };
                self.current.assign(type_byte, pos, 2, two_char);
                return pos + 2;
            }
        }
        
        // No 2-character operator found, check for special single character cases
        let ch = self.input[pos];
        if ch == b':' {
            // Special case: ':' is not an operator, it's TYPE_COLON
            self.current.assign_char(TYPE_COLON, pos, ch);
            return pos + 1;
        } else {
            // Must be a single char operator - delegate to parse_operator1
            return self.parse_operator1();
        }
    }
    
    pub(super) fn parse_other(&mut self) -> usize {
        let ch = self.input[self.pos];
        self.current.assign_char(TYPE_UNKNOWN, self.pos, ch);
        self.pos + 1
    }
    
    pub(super) fn parse_char(&mut self) -> usize {
        let ch = self.input[self.pos];
        self.current.assign_char(ch, self.pos, ch);
        self.pos + 1
    }
    
    pub(super) fn parse_hash(&mut self) -> usize {
        self.stats_comment_hash += 1;
        if self.flags.is_mysql() {
            // C version has a bug that increments stats_comment_hash twice in MySQL mode
            // We need to match this behavior exactly
            self.stats_comment_hash += 1;
            self.parse_eol_comment()
        } else {
            self.current.assign_char(TYPE_OPERATOR, self.pos, b'#');
            self.pos + 1
        }
    }
    
    pub(super) fn parse_dash(&mut self) -> usize {
        let pos = self.pos;
        let slen = self.input.len();
        
        if pos + 1 < slen && self.input[pos + 1] == b'-' {
            if pos + 2 >= slen || self.is_white_char(self.input[pos + 2]) {
                // "--" followed by whitespace or end: SQL comment
                self.stats_comment_ddw += 1;
                return self.parse_eol_comment();
            } else {
                // "--" followed by non-whitespace: depends on SQL mode
                self.stats_comment_ddx += 1;
                if self.flags.is_ansi() {
                    return self.parse_eol_comment();
                } else {
                    // MySQL treats as two unary operators
                    self.current.assign_char(TYPE_OPERATOR, pos, b'-');
                    return pos + 1;
                }
            }
        } else {
            // Single dash: operator
            self.current.assign_char(TYPE_OPERATOR, pos, b'-');
            pos + 1
        }
    }
    
    pub(super) fn parse_slash(&mut self) -> usize {
        let pos = self.pos;
        let slen = self.input.len();
        
        // Match C logic exactly: if (pos1 == slen || cs[pos1] != '*')
        if pos + 1 == slen || self.input[pos + 1] != b'*' {
            // Regular operator
            self.current.assign_char(TYPE_OPERATOR, pos, b'/');
            pos + 1
        } else {
            // C-style comment /* ... */
            self.stats_comment_c += 1;
            self.parse_c_comment()
        }
    }
    
    pub(super) fn parse_backslash(&mut self) -> usize {
        let pos = self.pos;
        let slen = self.input.len();
        
        // Weird MySQL alias for NULL, "\N" (capital N only)
        if pos + 1 < slen && self.input[pos + 1] == b'N' {
            let content = &self.input[pos..pos + 2];
            self.current.assign(TYPE_NUMBER, pos, 2, content);
            pos + 2
        } else {
            let ch = self.input[pos];
            self.current.assign_char(TYPE_BACKSLASH, pos, ch);
            pos + 1
        }
    }
    
    pub(super) fn parse_eol_comment(&mut self) -> usize {
        let pos = self.pos;
        let slen = self.input.len();
        
        // Find end of line or end of string
        let mut end_pos = pos;
        while end_pos < slen && self.input[end_pos] != b'\n' {
            end_pos += 1;
        }
        
        let comment_slice = &self.input[pos..end_pos];
        self.current.assign(TYPE_COMMENT, pos, end_pos - pos, comment_slice);
        
        if end_pos < slen {
            end_pos + 1 // Skip the newline
        } else {
            slen
        }
    }
    
    // Helper function equivalent to C memchr2: finds two consecutive characters
    pub(super) fn memchr2(&self, haystack: &[u8], c0: u8, c1: u8) -> Option<usize> {
        if haystack.len() < 2 {
            return None;
        }
        
        for i in 0..haystack.len() - 1 {
            if haystack[i] == c0 && haystack[i + 1] == c1 {
                return Some(i);
            }
        }
        None
    }
    
    // Helper function equivalent to C is_mysql_comment
    pub(super) fn is_mysql_comment(&self, pos: usize) -> bool {
        let slen = self.input.len();
        
        // Need at least 3 chars: /*!
        if pos + 2 >= slen {
            return false;
        }
        
        // Check if it's /*!
        self.input[pos] == b'/' && 
        self.input[pos + 1] == b'*' && 
        self.input[pos + 2] == b'!'
    }
    
    pub(super) fn parse_c_comment(&mut self) -> usize {
        let pos = self.pos;
        let slen = self.input.len();
        
        // This implements the exact same logic as C parse_slash function
        
        // Search for */ in the part after /*
        let search_slice = if pos + 2 < slen {
            &self.input[pos + 2..]
        } else {
            &[]
        };
        
        let clen = if let Some(close_pos) = self.memchr2(search_slice, b'*', b'/') {
            // Found */: include everything from /* to */
            (pos + 2) + close_pos + 2 - pos  // +2 to include the */
        } else {
            // No */ found: include everything to end of string
            slen - pos
        };
        
        let mut ctype = TYPE_COMMENT;
        
        // Check for nested comments - matching C logic exactly, including the off-by-one bug
        // C code: memchr2(cur + 2, (size_t)(ptr - (cur + 1)), '/', '*')
        // where ptr points to the '*' in the closing '*/'
        if let Some(close_pos) = self.memchr2(search_slice, b'*', b'/') {
            // In C terms:
            // - cur = pos (start of /*)
            // - ptr = pos + 2 + close_pos (points to * in */)
            // - Search start: cur + 2 = pos + 2 
            // - Search length: ptr - (cur + 1) = (pos + 2 + close_pos) - (pos + 1) = close_pos + 1
            // The bug: should be ptr - (cur + 2) = close_pos, but it's close_pos + 1
            
            // So we search 1 byte more than we should
            let buggy_search_length = close_pos + 1;
            
            // Make sure we don't go out of bounds
            let actual_search_length = buggy_search_length.min(search_slice.len());
            
            if actual_search_length > 0 {
                let buggy_search_region = &search_slice[..actual_search_length];
                if self.memchr2(buggy_search_region, b'/', b'*').is_some() {
                    ctype = TYPE_EVIL;
                }
            }
        }
        
        // Check for MySQL conditional comments /*!
        if self.is_mysql_comment(pos) {
            ctype = TYPE_EVIL;
        }
        
        let comment_slice = &self.input[pos..pos + clen];
        self.current.assign(ctype, pos, clen, comment_slice);
        pos + clen
    }
}
